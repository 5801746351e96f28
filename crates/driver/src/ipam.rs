//! The IpamDriver calls: a Docker address pool is a Neutron subnetpool (its id is the
//! PoolID), a container address is a port on the network's subnet.
//!
//! Pools kuryr creates are named `kuryrPool-<cidr>` and deleted once no subnet uses them;
//! pools the user names with `neutron.pool.*` are tagged `kuryr.subnetpool.existing` and
//! never deleted. Neutron allocates addresses, so two concurrent requests never get the same.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use kuryr_libnetwork::ipam::{
    ReleaseAddressRequest, ReleasePoolRequest, RequestAddressRequest, RequestAddressResponse,
    RequestPoolRequest, RequestPoolResponse,
};
use kuryr_libnetwork::network::keys;
use kuryr_libnetwork::plugin::Empty;
use kuryr_libnetwork::{MacAddress, PoolId};
use kuryr_openstack::neutron::{
    Filters, FixedIp, Port, PortSpec, Subnet, SubnetPool, SubnetPoolSpec,
};
use serde_json::Value;

use crate::error::{neutron_err, DriverError, Result};
use crate::lookup::{is_unbound_kuryr_port, same_cidr, with_tags};
use crate::mapping::{
    self, DEVICE_OWNER, EXISTING_POOL_TAG, EXISTING_PORT_TAG, SUBNET_NAME_PREFIX, UNBOUND_PORT_NAME,
};
use crate::options::{Family, NeutronOptions};
use crate::teardown::Teardown;
use crate::Driver;

impl Driver {
    pub(crate) async fn request_pool(
        &self,
        req: &RequestPoolRequest,
    ) -> Result<RequestPoolResponse> {
        let opts = NeutronOptions::parse(&string_options(&req.options.0)?)?;
        let family = if req.v6 { Family::V6 } else { Family::V4 };
        let cidr = match req.pool {
            Some(pool) => {
                if Family::of(&pool) != family {
                    return Err(DriverError::invalid(format!(
                        "Pool {pool} is not an IPv{} network, as V6={} says",
                        family.ip_version(),
                        req.v6
                    )));
                }
                if pool.trunc() != pool {
                    return Err(DriverError::invalid(format!(
                        "Pool {pool} has host bits set; did you mean --subnet {}?",
                        pool.trunc()
                    )));
                }
                pool
            }
            None if opts.subnet(family).is_some() || opts.pool(family).is_some() => {
                return Err(DriverError::invalid(
                    "neutron.subnet.* and neutron.pool.* need --subnet with the CIDR to use",
                ))
            }
            None => return self.request_default_pool(family, &opts).await,
        };
        // As upstream: with `--ip-range` the range is the working CIDR (the subnetpool
        // `kuryrPool-<range>`, the subnet `kuryr-subnet-<range>`, or the existing subnet with
        // exactly that CIDR on an adopted network); `--subnet` only has to hold it.
        let flag = if req.sub_pool.is_some() {
            "--ip-range"
        } else {
            "--subnet"
        };
        let cidr = match req.sub_pool {
            Some(sub) if Family::of(&sub) != family || !cidr.contains(&sub) => {
                return Err(DriverError::invalid(format!(
                    "--ip-range {sub} is not inside --subnet {cidr}"
                )));
            }
            Some(sub) if sub.trunc() != sub => {
                return Err(DriverError::invalid(format!(
                    "--ip-range {sub} has host bits set; did you mean --ip-range {}?",
                    sub.trunc()
                )));
            }
            Some(sub) => sub,
            None => cidr,
        };
        // A named subnet disambiguates overlapping CIDRs: it must have exactly this CIDR.
        let subnet = match opts.subnet(family) {
            Some(named) => {
                let s = self
                    .named(self.neutron.subnets(), "subnet", named, |s: &Subnet| &s.id)
                    .await?;
                if !same_cidr(&s.cidr, &cidr.to_string()) {
                    return Err(DriverError::conflict(format!(
                        "subnet {} has CIDR {}, not {cidr}; pass {flag} {}",
                        s.id, s.cidr, s.cidr
                    )));
                }
                Some(s)
            }
            None => None,
        };
        let mut pool = match opts.pool(family) {
            Some(named) => self.adopt_pool(named, &cidr, opts.shared).await?,
            None => self.kuryr_pool(&cidr, subnet.as_ref(), opts.shared).await?,
        };
        // A pool that pins a named subnet, or the user's, may be other control planes' too.
        if subnet.is_some() || opts.pool(family).is_some() {
            let own = self.config.control_plane.tag().await?;
            // A pool this control plane made carries its tag from the start.
            if !pool.tags.contains(&own) {
                self.neutron
                    .subnetpools()
                    .add_tag(&pool.id, &own)
                    .await
                    .map_err(neutron_err(format_args!(
                        "tagging subnetpool {} as used by this control plane",
                        pool.id
                    )))?;
                pool.tags.push(own);
            }
        }
        self.cache.set_pool(&pool);
        pool_response(&pool, cidr, subnet.as_ref())
    }

    /// A user-named existing subnetpool: its prefixes must hold the CIDR and its `shared`
    /// match the option; it is tagged so that kuryr never deletes it.
    async fn adopt_pool(
        &self,
        named: &crate::options::Named,
        cidr: &IpNet,
        shared: Option<bool>,
    ) -> Result<SubnetPool> {
        let pool = self
            .named(
                self.neutron.subnetpools(),
                "subnetpool",
                named,
                |p: &SubnetPool| &p.id,
            )
            .await?;
        let holds = pool
            .prefixes
            .iter()
            .filter_map(|p| p.parse::<IpNet>().ok())
            .any(|p| p.contains(cidr));
        if !holds {
            return Err(DriverError::conflict(format!(
                "subnetpool {} has the prefixes {}, which do not hold {cidr}; pick a --subnet \
                 inside them",
                pool.id,
                pool.prefixes.join(", ")
            )));
        }
        check_shared("subnetpool", &pool.id, pool.shared, shared)?;
        // One tag at a time: another control plane may be tagging it at the same moment.
        let mut pool = pool;
        if !pool.tags.iter().any(|t| t == EXISTING_POOL_TAG) {
            self.neutron
                .subnetpools()
                .add_tag(&pool.id, EXISTING_POOL_TAG)
                .await
                .map_err(neutron_err(format_args!("tagging subnetpool {}", pool.id)))?;
            pool.tags.push(EXISTING_POOL_TAG.to_owned());
        }
        Ok(pool)
    }

    /// `kuryrPool-<cidr>` for a new Docker pool: one per CIDR while no subnet uses it, even
    /// when several calls of this daemon race (calls here are serialized per CIDR). A pool
    /// that pins a named subnet is looked up first (tagged with the subnet's id); any other
    /// is created without a lookup: each Docker network gets its own pool (pools without an
    /// address scope may share a prefix), made in one request. A lost answer is found by
    /// the pool's name and the description that names this host; a pool a crash left
    /// without a network is the reconciler's (see `reconcile`).
    async fn kuryr_pool(
        &self,
        cidr: &IpNet,
        subnet: Option<&Subnet>,
        shared: Option<bool>,
    ) -> Result<SubnetPool> {
        let subnet_id = subnet.map(|s| s.id.as_str());
        let _guard = self
            .locks
            .lock(format!("pool {cidr} {}", subnet_id.unwrap_or("")))
            .await;
        let known = match subnet_id {
            None => self.cache.new_pool_of(&cidr.to_string()),
            Some(id) => self.find_kuryr_pool(cidr, Some(id)).await?,
        };
        if let Some(pool) = known {
            check_shared("subnetpool", &pool.id, pool.shared, shared)?;
            return Ok(pool);
        }
        // Known before the pool is made, so that failing to learn it leaves nothing behind.
        let own = match subnet_id {
            Some(_) => Some(self.config.control_plane.tag().await?),
            None => None,
        };
        let name = mapping::subnetpool_name(&self.config.subnetpool_name_prefix, cidr);
        let description = mapping::pool_description(&self.config.host_id);
        let api = self.neutron.subnetpools();
        let marks = Filters::new()
            .eq("name", name.as_str())
            .eq("description", description.as_str());
        let created = api
            .create_once_found_by(
                &SubnetPoolSpec {
                    name: Some(name.clone()),
                    description: Some(description.clone()),
                    prefixes: Some(vec![cidr.to_string()]),
                    default_prefixlen: Some(u32::from(cidr.prefix_len())),
                    shared,
                    ..Default::default()
                },
                &marks,
                // The newest: the pool made a moment ago, not an older one of this host.
                |found| {
                    found
                        .into_iter()
                        .max_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)))
                },
            )
            .await
            .map_err(neutron_err(format_args!("creating subnetpool {name}")))?;
        // A pool that pins a subnet is this control plane's own: another one mapping the
        // same subnet makes its own pool (the subnet carries each pool's id), so control
        // planes never race over one pool nor delete one another's.
        let tags: Vec<String> = subnet_id
            .map(str::to_owned)
            .into_iter()
            .chain(own)
            .collect();
        if !tags.is_empty() {
            if let Err(e) = api.replace_tags(&created.id, &tags).await {
                let _ = api.delete(&created.id).await;
                return Err(DriverError::neutron(
                    format!("tagging subnetpool {name}"),
                    &e,
                ));
            }
        }
        let pool = SubnetPool { tags, ..created };
        self.cache.set_new_pool(&pool);
        Ok(pool)
    }

    /// The kuryr pool of a CIDR: named `kuryrPool-<cidr>` with exactly that prefix, tagged
    /// with the subnet id when one was named, untagged by any subnet id otherwise.
    pub(crate) async fn find_kuryr_pool(
        &self,
        cidr: &IpNet,
        subnet_id: Option<&str>,
    ) -> Result<Option<SubnetPool>> {
        // One pinning a subnet: this control plane's, or one without any control plane's
        // tag (made by upstream's driver or an older kuryr), which whoever maps it takes.
        let own = match subnet_id {
            Some(_) => Some(self.config.control_plane.tag().await?),
            None => None,
        };
        let name = mapping::subnetpool_name(&self.config.subnetpool_name_prefix, cidr);
        let mut pools = self
            .neutron
            .subnetpools()
            .list(&Filters::new().eq("name", name.as_str()))
            .await
            .map_err(neutron_err(format_args!("looking up subnetpool {name}")))?;
        pools.retain(|p| {
            p.prefixes.len() == 1
                && same_cidr(&p.prefixes[0], &cidr.to_string())
                && match subnet_id {
                    Some(id) => {
                        p.tags.iter().any(|t| t == id)
                            && (own.as_ref().is_some_and(|o| p.tags.contains(o))
                                || !p.tags.iter().any(|t| mapping::is_control_plane_tag(t)))
                    }
                    None => !p.tags.iter().any(|t| mapping::is_uuid(t)),
                }
        });
        // This control plane's first, then by id.
        pools.sort_by_key(|p| {
            (
                own.as_ref().is_none_or(|o| !p.tags.contains(o)),
                p.id.clone(),
            )
        });
        Ok(pools.into_iter().next())
    }

    /// `docker network create` without `--subnet`: carve the next free block of the default
    /// subnetpool's default prefix length, and make it a kuryr pool like any other.
    async fn request_default_pool(
        &self,
        family: Family,
        opts: &NeutronOptions,
    ) -> Result<RequestPoolResponse> {
        let name = match family {
            Family::V4 => &self.config.default_subnetpool_v4,
            Family::V6 => &self.config.default_subnetpool_v6,
        };
        let option = match family {
            Family::V4 => "default_subnetpool_v4",
            Family::V6 => "default_subnetpool_v6",
        };
        let default = self
            .named(
                self.neutron.subnetpools(),
                "subnetpool",
                &crate::options::Named::Name(name.clone()),
                |p: &SubnetPool| &p.id,
            )
            .await
            .map_err(|e| {
                e.context(format!(
                    "the network has no --subnet, so kuryr takes one from the default \
                     subnetpool ([neutron] {option} = {name}), which it cannot use; create it \
                     (openstack subnet pool create --pool-prefix <cidr> --default-prefix-length \
                     <n> {name}) or pass --subnet"
                ))
            })?;
        let Some(prefix_len) = default.default_prefixlen.and_then(|l| u8::try_from(l).ok()) else {
            return Err(DriverError::conflict(format!(
                "default subnetpool {name} has no default_prefixlen; set one \
                 (openstack subnet pool set --default-prefix-length <n> {name})"
            )));
        };
        // Serialized, so that two networks created at once get different blocks.
        let _guard = self
            .locks
            .lock(format!("default pool {}", default.id))
            .await;
        let mut used: Vec<IpNet> = self
            .neutron
            .subnets()
            .list(
                &Filters::new()
                    .eq("subnetpool_id", default.id.as_str())
                    .fields(["id", "cidr"]),
            )
            .await
            .map_err(neutron_err(format_args!(
                "listing the subnets of subnetpool {name}"
            )))?
            .iter()
            .filter_map(|s| s.cidr.parse().ok())
            .collect();
        let kuryr_prefix = format!("{}-", self.config.subnetpool_name_prefix);
        let pools = self
            .neutron
            .subnetpools()
            .list(
                &Filters::new()
                    .eq("ip_version", family.ip_version().to_string())
                    .fields(["id", "name", "prefixes"]),
            )
            .await
            .map_err(neutron_err("listing subnetpools"))?;
        used.extend(
            pools
                .iter()
                .filter(|p| p.name.starts_with(&kuryr_prefix))
                .flat_map(|p| p.prefixes.iter().filter_map(|c| c.parse::<IpNet>().ok())),
        );
        let overlaps = |a: &IpNet, b: &IpNet| a.contains(&b.network()) || b.contains(&a.network());
        let free = default
            .prefixes
            .iter()
            .filter_map(|p| p.parse::<IpNet>().ok())
            .filter_map(|p| p.subnets(prefix_len).ok())
            .flatten()
            .find(|candidate| !used.iter().any(|u| overlaps(u, candidate)));
        let Some(cidr) = free else {
            return Err(DriverError::conflict(format!(
                "default subnetpool {name} ({}) has no free /{prefix_len} left; add a prefix \
                 to it or pass --subnet",
                default.prefixes.join(", ")
            )));
        };
        let pool = self.kuryr_pool(&cidr, None, opts.shared).await?;
        self.cache.set_pool(&pool);
        pool_response(&pool, cidr, None)
    }

    pub(crate) async fn release_pool(&self, req: &ReleasePoolRequest) -> Result<Empty> {
        // Docker 20.10 releases a pool before deleting its network: a pool of kuryr's whose
        // subnet kuryr made goes with that network's DeleteNetwork, which knows it.
        let pool_id = req.pool_id.as_str();
        if let (Some(pool), Some(subnet)) =
            (self.cache.pool(pool_id), self.cache.pool_subnet(pool_id))
        {
            let kuryr_pool = pool
                .name
                .starts_with(&format!("{}-", self.config.subnetpool_name_prefix))
                && !pool.tags.iter().any(|t| t == EXISTING_POOL_TAG);
            if kuryr_pool
                && subnet.name.starts_with(SUBNET_NAME_PREFIX)
                && subnet.subnetpool_id.as_deref() == Some(pool_id)
            {
                return Ok(Empty {});
            }
        }
        self.cache.forget_subnetpool(pool_id);
        let Some(pool) = self.subnetpool(&req.pool_id).await? else {
            return Ok(Empty {});
        };
        let own = if pool.tags.iter().any(|t| mapping::is_control_plane_tag(t)) {
            Some(self.config.control_plane.tag().await?)
        } else {
            None
        };
        self.leave_pool(pool, own.as_deref()).await
    }

    /// A control plane (tagged `control_plane_tag`) gives a pool back: its mark goes, and
    /// the last control plane, or one with no mark (a pool only it used), gives the pool
    /// back: its subnets untagged, kuryr's own pool deleted once unused.
    pub(crate) async fn leave_pool(
        &self,
        mut pool: SubnetPool,
        control_plane_tag: Option<&str>,
    ) -> Result<Empty> {
        let others = |p: &SubnetPool| {
            p.tags
                .iter()
                .any(|t| mapping::is_control_plane_tag(t) && Some(t.as_str()) != control_plane_tag)
        };
        if let (Some(tag), true) = (control_plane_tag, others(&pool)) {
            // Shared: this control plane's mark goes; the last one gives the pool back.
            self.unmark_pool(&pool.id, tag).await?;
            let Some(now) = self.pool_again(&pool.id).await? else {
                return Ok(Empty {});
            };
            if others(&now) {
                tracing::info!(pool = %pool.id, "another control plane still uses this pool; left to it");
                return Ok(Empty {});
            }
            pool = now;
        }
        // The last user: the subnets adopted for this pool carried its id, and are given back
        // untouched before its mark goes, so that a crash in between leaves a pool no subnet
        // names, which the reconciler recognises. Another control plane may have marked the
        // pool since it was read: then it keeps the pool and the subnets' tags.
        if let Some(tag) = control_plane_tag {
            match self.pool_again(&pool.id).await? {
                None => return Ok(Empty {}),
                Some(now) if others(&now) => {
                    self.unmark_pool(&pool.id, tag).await?;
                    return Ok(Empty {});
                }
                Some(now) => pool = now,
            }
        }
        let tagged = self
            .neutron
            .subnets()
            .list(
                &Filters::new()
                    .tags([pool.id.as_str()])
                    .fields(["id", "tags"]),
            )
            .await
            .map_err(neutron_err(format_args!(
                "listing the subnets tagged with pool {}",
                pool.id
            )))?;
        for subnet in tagged {
            self.untag_each(
                self.neutron.subnets(),
                &subnet.id,
                std::slice::from_ref(&pool.id),
            )
            .await
            .map_err(neutron_err(format_args!("untagging subnet {}", subnet.id)))?;
        }
        if let Some(tag) = control_plane_tag.filter(|t| pool.tags.iter().any(|x| x == t)) {
            self.unmark_pool(&pool.id, tag).await?;
            pool.tags.retain(|t| t != tag);
        }
        self.forget_subnetpool(&pool).await
    }

    /// Removes one control plane's mark from a pool.
    async fn unmark_pool(&self, pool_id: &str, tag: &str) -> Result<()> {
        self.neutron
            .subnetpools()
            .remove_tag(pool_id, tag)
            .await
            .map_err(neutron_err(format_args!(
                "untagging subnetpool {pool_id} for control plane {tag}"
            )))?;
        Ok(())
    }

    /// A pool as Neutron has it now (another control plane may have marked it meanwhile).
    async fn pool_again(&self, pool_id: &str) -> Result<Option<SubnetPool>> {
        self.neutron
            .subnetpools()
            .get_opt(pool_id)
            .await
            .map_err(neutron_err(format_args!("reading subnetpool {pool_id}")))
    }

    /// Delete a kuryr pool once no subnet uses it; untag an adopted one once unused.
    /// A pool still in use is left for the DeleteNetwork that deletes its subnet (Docker
    /// 20.10 releases the pool before deleting the network; older Docker the other way).
    pub(crate) async fn forget_subnetpool(&self, pool: &SubnetPool) -> Result<Empty> {
        if pool.tags.iter().any(|t| mapping::is_control_plane_tag(t)) {
            // Another control plane still maps it (this one's mark went at ReleasePool).
            return Ok(Empty {});
        }
        let kuryr_prefix = format!("{}-", self.config.subnetpool_name_prefix);
        if pool.tags.iter().any(|t| t == EXISTING_POOL_TAG) {
            // Still used by a Docker network while one of its subnets is kuryr's or
            // adopted (tagged with the pool's id).
            let in_use = self
                .neutron
                .subnets()
                .list(
                    &Filters::new()
                        .eq("subnetpool_id", pool.id.as_str())
                        .fields(["id", "name", "tags"]),
                )
                .await
                .map_err(neutron_err(format_args!(
                    "listing the subnets of pool {}",
                    pool.id
                )))?
                .into_iter()
                .filter(|s| s.name.starts_with(SUBNET_NAME_PREFIX) || s.tags.contains(&pool.id))
                .collect::<Vec<_>>();
            if in_use.is_empty() {
                self.untag_each(
                    self.neutron.subnetpools(),
                    &pool.id,
                    &[EXISTING_POOL_TAG.to_string()],
                )
                .await
                .map_err(neutron_err(format_args!(
                    "untagging subnetpool {}",
                    pool.id
                )))?;
            }
            return Ok(Empty {});
        }
        if !pool.name.starts_with(&kuryr_prefix) {
            // Not kuryr's (a default pool, or one named by the user): never deleted.
            return Ok(Empty {});
        }
        match self.neutron.subnetpools().delete(&pool.id).await {
            Ok(_) => Ok(Empty {}),
            // Neutron says 400 SubnetPoolDeleteError ("has existing allocations"), or 409.
            Err(e) if e.is_conflict() || e.kind() == Some("SubnetPoolDeleteError") => {
                tracing::info!(pool = %pool.id, "subnetpool still has subnets; it goes with its network");
                Ok(Empty {})
            }
            Err(e) => Err(DriverError::neutron(
                format!("deleting subnetpool {}", pool.id),
                &e,
            )),
        }
    }

    /// The subnetpool behind a PoolID, or None when it is gone.
    pub(crate) async fn subnetpool(&self, pool_id: &PoolId) -> Result<Option<SubnetPool>> {
        if !mapping::is_uuid(pool_id.as_str()) {
            return Err(DriverError::invalid(format!(
                "PoolID {} is not a Neutron subnetpool id; was this network's pool requested \
                 from another IPAM driver?",
                pool_id.as_str()
            )));
        }
        self.neutron
            .subnetpools()
            .get_opt(pool_id.as_str())
            .await
            .map_err(neutron_err(format_args!(
                "looking up subnetpool {}",
                pool_id.as_str()
            )))
    }

    pub(crate) async fn request_address(
        &self,
        req: &RequestAddressRequest,
    ) -> Result<RequestAddressResponse> {
        if let Some(pooled) = self.pooled_address(req).await? {
            return Ok(pooled);
        }
        if let Some(quick) = self.quick_address(req).await? {
            return Ok(quick);
        }
        // The gateway of a pool made a moment ago, before its network: nothing to look up.
        if let Some(pool) = self
            .cache
            .new_pool(req.pool_id.as_str())
            .filter(|_| req.is_gateway())
        {
            return gateway_address(&pool, None, req.address);
        }
        let Some(pool) = self.subnetpool(&req.pool_id).await? else {
            return Err(DriverError::not_found(format!(
                "subnetpool {} does not exist (any more); remove and re-create the Docker network",
                req.pool_id.as_str()
            )));
        };
        let subnet = self.subnet_of_pool(&pool).await?;
        if req.is_gateway() {
            return gateway_address(&pool, subnet.as_ref(), req.address);
        }
        let Some(subnet) = subnet else {
            return Err(DriverError::not_found(format!(
                "subnetpool {} has no subnet yet, so no address can be taken from it; create \
                 the Docker network first (with -d kuryr)",
                pool.id
            )));
        };
        let mac = req
            .mac_address()
            .map_err(|e| DriverError::invalid(format!("Options.{}: {e}", keys::MAC_ADDRESS)))?;
        self.cache.set_pool_subnet(&pool.id, &subnet);
        let port = match req.address {
            Some(ip) => self.port_for_address(&subnet, ip, mac.as_ref()).await?,
            None => self.port_for_any_address(&subnet, mac.as_ref()).await?,
        };
        address_on(&port, &subnet)
    }

    /// The common case without a pool, any address of a subnet already known: one Neutron
    /// request (the port's creation, or the endpoint's other-family address on the port this
    /// daemon made for it). None when the usual path's lookups must decide: a given address,
    /// a MAC a port already has (`--mac-address` of a user's port), a subnet or network gone.
    async fn quick_address(
        &self,
        req: &RequestAddressRequest,
    ) -> Result<Option<RequestAddressResponse>> {
        if req.address.is_some() || req.is_gateway() {
            return Ok(None);
        }
        let Ok(mac) = req.mac_address() else {
            return Ok(None);
        };
        let Some(subnet) = self.cache.pool_subnet(req.pool_id.as_str()) else {
            return Ok(None);
        };
        if let Some(entry) = mac
            .as_ref()
            .and_then(|m| self.ledger.by_mac(&subnet.network_id, &m.to_string()))
        {
            if entry.endpoint.is_some() || !is_unbound_kuryr_port(&entry.port) {
                return Ok(None);
            }
            let port = if entry
                .port
                .fixed_ips
                .iter()
                .any(|f| f.subnet_id == subnet.id)
            {
                entry.port
            } else {
                let id = entry.port.id.clone();
                match self.add_address_to_port(entry.port, &subnet).await {
                    Ok(port) => port,
                    Err(e) if e.neutron_cause().is_some_and(|n| n.is_not_found()) => {
                        self.ledger.forget(&id);
                        return Ok(None);
                    }
                    Err(e) => return Err(e),
                }
            };
            return address_on(&port, &subnet).map(Some);
        }
        match self.create_ipam_port(&subnet, None, mac.as_ref()).await {
            Ok(port) => address_on(&port, &subnet).map(Some),
            Err(e) => match e.neutron_cause() {
                Some(n) if n.kind() == Some("MacAddressInUse") => Ok(None),
                Some(n) if n.is_not_found() => {
                    self.cache.forget_subnetpool(req.pool_id.as_str());
                    Ok(None)
                }
                _ => Err(e),
            },
        }
    }

    /// `--ip`: adopt a free existing port with that address, or create one.
    async fn port_for_address(
        &self,
        subnet: &Subnet,
        ip: IpAddr,
        mac: Option<&MacAddress>,
    ) -> Result<Port> {
        let existing = self
            .ports_holding(&subnet.network_id, &subnet.id, &ip.to_string())
            .await?
            .into_iter()
            .next();
        match existing {
            Some(port) => self.adopt_existing_port(port, ip, mac).await,
            None => self.create_ipam_port(subnet, Some(ip), mac).await,
        }
    }

    /// An address chosen by Neutron. The MAC Docker chose finds a port the user made for this
    /// container (`--mac-address`), or the port IPAM made for the other address family of
    /// the same endpoint (one dual-stack port per endpoint).
    async fn port_for_any_address(
        &self,
        subnet: &Subnet,
        mac: Option<&MacAddress>,
    ) -> Result<Port> {
        if let Some(mac) = mac {
            let same_mac = self
                .neutron
                .ports()
                .list(
                    &Filters::new()
                        .eq("network_id", subnet.network_id.as_str())
                        .eq("mac_address", mac.to_string()),
                )
                .await
                .map_err(neutron_err(format_args!(
                    "looking for a port with MAC {mac}"
                )))?;
            if let Some(port) = same_mac.into_iter().next() {
                if let Some(ip) = port
                    .fixed_ips
                    .iter()
                    .find(|f| f.subnet_id == subnet.id)
                    .and_then(|f| f.ip_address.parse().ok())
                {
                    return self.adopt_existing_port(port, ip, Some(mac)).await;
                }
                if is_unbound_kuryr_port(&port) {
                    return self.add_address_to_port(port, subnet).await;
                }
            }
        }
        self.create_ipam_port(subnet, None, mac).await
    }

    /// Whether a Neutron network serves a swarm network (its Docker id is a swarm id).
    async fn serves_swarm(&self, network_id: &str) -> Result<bool> {
        let network = self
            .neutron
            .networks()
            .get_opt(network_id)
            .await
            .map_err(neutron_err(format_args!("reading network {network_id}")))?;
        Ok(network.is_some_and(|n| mapping::serves_swarm(&n.tags)))
    }

    /// A port the user created: tagged as adopted (with this host's tag, so that the
    /// reconciler gives it back if Docker never uses it, and the MAC of the asking endpoint);
    /// refused when it already serves something, unless it is the same endpoint asking for
    /// the port's address of the other family.
    async fn adopt_existing_port(
        &self,
        port: Port,
        ip: IpAddr,
        mac: Option<&MacAddress>,
    ) -> Result<Port> {
        if port.tags.iter().any(|t| t == DEVICE_OWNER) {
            // The swarm manager's IPAM took this address for a task: the node that starts
            // it asks for it again, and so does a new manager for its running tasks (the port
            // bound by then); the task keeps that port. Never a host's pool port.
            let pooled = port.tags.iter().any(|t| crate::pool::is_pool_tag(t));
            if !pooled && self.serves_swarm(&port.network_id).await? {
                return Ok(port);
            }
            return Err(DriverError::conflict(format!(
                "address {ip} is in use by kuryr port {}; pick another --ip or release it",
                port.id
            )));
        }
        // Who asks: the endpoint's MAC, or without one (pools on) the address family.
        let by = match mac {
            Some(mac) => mapping::adopted_by_tag(mac),
            None => mapping::adopted_for_tag(ip),
        };
        let adopted = port.tags.iter().any(|t| t == EXISTING_PORT_TAG);
        let same_endpoint = match mac {
            Some(_) => port.tags.contains(&by),
            // The other family's request of the endpoint that took the port a moment ago;
            // a second request of one family is another endpoint's.
            None => {
                !port.tags.contains(&by) && port.tags.iter().any(|t| mapping::is_adopted_for_tag(t))
            }
        };
        if adopted && port.device_owner.is_empty() && same_endpoint {
            if mac.is_none() {
                self.add_tags(self.neutron.ports(), &port.id, &port.tags, &[by])
                    .await
                    .map_err(neutron_err(format_args!("tagging port {}", port.id)))?;
            }
            return Ok(port);
        }
        if !port.device_owner.is_empty() || adopted {
            return Err(DriverError::conflict(format!(
                "address {ip} belongs to port {} which is in use{}; pick another --ip",
                port.id,
                if port.device_owner.is_empty() {
                    String::new()
                } else {
                    format!(" by {}", port.device_owner)
                }
            )));
        }
        let tags = vec![
            EXISTING_PORT_TAG.to_string(),
            mapping::host_tag(&self.config.host_id),
            by,
        ];
        self.add_tags(self.neutron.ports(), &port.id, &port.tags, &tags)
            .await
            .map_err(neutron_err(format_args!("tagging port {}", port.id)))?;
        Ok(port)
    }

    /// Dual stack: the second family's address goes on the first family's port.
    async fn add_address_to_port(&self, port: Port, subnet: &Subnet) -> Result<Port> {
        let mut fixed_ips: Vec<FixedIp> = port.fixed_ips.clone();
        fixed_ips.push(FixedIp {
            subnet_id: subnet.id.clone(),
            ip_address: String::new(),
        });
        self.neutron
            .ports()
            .update(
                &port.id,
                &PortSpec {
                    fixed_ips: Some(fixed_ips),
                    ..Default::default()
                },
            )
            .await
            .map_err(neutron_err(format_args!(
                "adding an address of subnet {} to port {}",
                subnet.id, port.id
            )))
            .inspect(|port| self.ledger.remember(port))
    }

    /// A new unbound port for an address, tagged as kuryr's.
    async fn create_ipam_port(
        &self,
        subnet: &Subnet,
        ip: Option<IpAddr>,
        mac: Option<&MacAddress>,
    ) -> Result<Port> {
        let tags = vec![
            DEVICE_OWNER.to_string(),
            mapping::host_tag(&self.config.host_id),
        ];
        let api = self.neutron.ports();
        let mut spec = PortSpec {
            name: Some(UNBOUND_PORT_NAME.into()),
            network_id: Some(subnet.network_id.clone()),
            admin_state_up: Some(true),
            mac_address: mac.map(ToString::to_string),
            fixed_ips: Some(vec![FixedIp {
                subnet_id: subnet.id.clone(),
                ip_address: ip.map(|i| i.to_string()).unwrap_or_default(),
            }]),
            ..Default::default()
        };
        let created = if self.readiness.tags_on_port_create() {
            let request = mapping::request_tag();
            spec.tags = Some([tags.clone(), vec![request.clone()]].concat());
            api.create_once(&spec, &request).await
        } else {
            api.create(&spec).await
        };
        let port = created.map_err(|e| {
            let what = match ip {
                Some(ip) => {
                    format!("creating a port with address {ip} on subnet {}", subnet.id)
                }
                None => format!("creating a port on subnet {}", subnet.id),
            };
            DriverError::neutron(what, &e)
        })?;
        let mut port = port;
        if !tags.iter().all(|t| port.tags.contains(t)) {
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
        }
        self.ledger.remember(&port);
        Ok(port)
    }

    pub(crate) async fn release_address(&self, req: &ReleaseAddressRequest) -> Result<Empty> {
        let Some(ip) = req.address else {
            return Ok(Empty {});
        };
        if self.pooled_release(req).await? {
            return Ok(Empty {});
        }
        if self.quick_release(req, ip).await? {
            return Ok(Empty {});
        }
        // The gateway is the subnet's, not a port kuryr made: nothing to release.
        if let Some(subnet) = self.cache.pool_subnet(req.pool_id.as_str()) {
            if subnet.gateway_ip.as_deref().and_then(|g| g.parse().ok()) == Some(ip) {
                return Ok(Empty {});
            }
        }
        if !mapping::is_uuid(req.pool_id.as_str()) {
            // Not a pool of kuryr's: refused as RequestAddress refuses it, and not recorded.
            return self.subnetpool(&req.pool_id).await.map(|_| Empty {});
        }
        // Finding the ports takes Neutron requests that may fail: the record comes first.
        self.finishing(release_record(req, ip), async {
            self.release_address_in(&req.pool_id, ip, None).await?;
            Ok(Empty {})
        })
        .await
    }

    /// ReleaseAddress of a port this daemon's IPAM made and DeleteEndpoint let go: deleted by
    /// id, with no lookup (the other address of a dual-stack port is then answered from
    /// memory). False when the usual path must find the port.
    async fn quick_release(&self, req: &ReleaseAddressRequest, ip: IpAddr) -> Result<bool> {
        let Some(subnet) = self.cache.pool_subnet(req.pool_id.as_str()) else {
            return Ok(false);
        };
        let Some(entry) = self.ledger.by_address(&subnet.network_id, ip) else {
            return Ok(false);
        };
        if entry.deleted {
            self.ledger.released(&entry.port.id, ip);
            return Ok(true);
        }
        if entry.endpoint.is_some() {
            return Ok(false);
        }
        let port_id = entry.port.id.clone();
        match self
            .finishing(release_record(req, ip), self.release_port(&entry.port))
            .await
        {
            Ok(()) => {
                self.ledger.released(&port_id, ip);
                Ok(true)
            }
            Err(e) => {
                self.ledger.forget(&port_id);
                Err(e)
            }
        }
    }

    /// Releases the kuryr ports of `pool` that hold `ip`; with `made_before` (a record sent
    /// again), only ports Neutron made by then (its times have whole seconds, hence `<=`):
    /// a later one holds the address for someone else.
    pub(crate) async fn release_address_in(
        &self,
        pool_id: &PoolId,
        ip: IpAddr,
        made_before: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<()> {
        let Some(pool) = self.subnetpool(pool_id).await? else {
            return Ok(());
        };
        let Some(subnet) = self.subnet_of_pool(&pool).await? else {
            return Ok(());
        };
        let before = made_before.map(|t| t.timestamp());
        let ports: Vec<Port> = self
            .ports_holding(&subnet.network_id, &subnet.id, &ip.to_string())
            .await?
            .into_iter()
            .filter(is_released_by_ipam)
            .filter(|p| {
                let Some(before) = before else { return true };
                p.created_at
                    .as_deref()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .is_some_and(|made| made.timestamp() <= before)
            })
            .collect();
        for port in &ports {
            self.ledger.forget(&port.id);
            self.release_port(port).await?;
        }
        Ok(())
    }

    /// What ReleaseAddress does to a port that held the address: an adopted one is given
    /// back, one kuryr made goes back to its pool or is deleted.
    pub(crate) async fn release_port(&self, port: &Port) -> Result<()> {
        if port.tags.iter().any(|t| t == EXISTING_PORT_TAG) {
            self.release_subport(port).await?;
            return self.reset_existing_port(port).await;
        }
        if !is_released_by_ipam(port) {
            return Ok(());
        }
        self.release_subport(port).await?;
        if self.pooled_recycle(port) {
            return Ok(());
        }
        match self.neutron.ports().delete(&port.id).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(DriverError::neutron(
                format!("deleting port {}", port.id),
                &e,
            )),
        }
    }

    /// Give an adopted port back as it was: unbound, no owner, none of kuryr's tags.
    async fn reset_existing_port(&self, port: &Port) -> Result<()> {
        // kuryr fills an empty device_id with the endpoint id (64 hex digits, which no user
        // tool writes); upstream also with a name that starts with it.
        let reset_device = !port.device_id.is_empty()
            && (port.name.starts_with(&port.device_id) || is_endpoint_id(&port.device_id));
        let spec = PortSpec {
            device_owner: Some(String::new()),
            binding_host_id: Some(String::new()),
            device_id: reset_device.then(String::new),
            ..Default::default()
        };
        self.neutron
            .ports()
            .update(&port.id, &spec)
            .await
            .map_err(neutron_err(format_args!("resetting port {}", port.id)))?;
        let kuryr_tags: Vec<String> = port
            .tags
            .iter()
            .filter(|t| mapping::is_adoption_tag(t) || t.starts_with("kuryr.net.uuid."))
            .cloned()
            .collect();
        self.remove_tags(self.neutron.ports(), &port.id, &port.tags, &kuryr_tags)
            .await
            .map_err(neutron_err(format_args!("untagging port {}", port.id)))
    }
}

/// The record of a ReleaseAddress, written before it asks Neutron anything.
fn release_record(req: &ReleaseAddressRequest, ip: IpAddr) -> Teardown {
    Teardown::ReleaseAddressIn {
        pool_id: req.pool_id.as_str().to_owned(),
        address: ip.to_string(),
        recorded_at: chrono::Utc::now().to_rfc3339(),
    }
}

/// RequestAddress's answer: the port's address on the subnet.
fn address_on(port: &Port, subnet: &Subnet) -> Result<RequestAddressResponse> {
    let ip = port
        .fixed_ips
        .iter()
        .find(|f| f.subnet_id == subnet.id)
        .and_then(|f| f.ip_address.parse::<IpAddr>().ok())
        .ok_or_else(|| {
            DriverError::unusable(format!(
                "port {} has no address on subnet {}; Neutron answered without one",
                port.id, subnet.id
            ))
        })?;
    Ok(RequestAddressResponse {
        address: with_prefix(ip, subnet)?,
        data: BTreeMap::new(),
    })
}

/// Ports ReleaseAddress acts on: adopted ones, those IPAM made, and those CreateEndpoint
/// made when IPAM had made none (named after their endpoint).
fn is_released_by_ipam(port: &Port) -> bool {
    port.tags
        .iter()
        .any(|t| t == EXISTING_PORT_TAG || t == DEVICE_OWNER)
        || (!port.device_id.is_empty() && port.name == format!("{}-port", port.device_id))
}

/// RequestPool's answer; `Data` carries the gateway so that Docker needs no `--gateway`.
fn pool_response(
    pool: &SubnetPool,
    cidr: IpNet,
    subnet: Option<&Subnet>,
) -> Result<RequestPoolResponse> {
    let gateway = match subnet {
        Some(s) => s
            .gateway_ip
            .as_deref()
            .and_then(|g| g.parse::<IpAddr>().ok()),
        None => first_host(&cidr),
    };
    let mut data = BTreeMap::new();
    if let Some(gw) = gateway.and_then(|g| IpNet::new(g, cidr.prefix_len()).ok()) {
        data.insert(keys::GATEWAY.to_string(), gw.to_string());
    }
    Ok(RequestPoolResponse {
        pool_id: PoolId::new(pool.id.clone()).map_err(DriverError::unusable)?,
        pool: cidr,
        data,
    })
}

/// The gateway request: the subnet's gateway once the subnet exists, else what Docker asks
/// for (or what RequestPool proposed).
fn gateway_address(
    pool: &SubnetPool,
    subnet: Option<&Subnet>,
    requested: Option<IpAddr>,
) -> Result<RequestAddressResponse> {
    let answer = |ip: IpAddr, prefix: u8| -> Result<RequestAddressResponse> {
        Ok(RequestAddressResponse {
            address: IpNet::new(ip, prefix)
                .map_err(|e| DriverError::invalid(format!("gateway {ip}/{prefix}: {e}")))?,
            data: BTreeMap::new(),
        })
    };
    match subnet {
        Some(s) => {
            let cidr: IpNet = s.cidr.parse().map_err(|_| {
                DriverError::unusable(format!(
                    "subnet {} has an unreadable CIDR {:?}",
                    s.id, s.cidr
                ))
            })?;
            let current = s
                .gateway_ip
                .as_deref()
                .and_then(|g| g.parse::<IpAddr>().ok());
            match (requested, current) {
                (Some(want), Some(have)) if want != have => Err(DriverError::conflict(format!(
                    "--gateway {want} differs from the gateway {have} of subnet {}; pass \
                     --gateway {have} or leave it out",
                    s.id
                ))),
                (Some(want), None) => Err(DriverError::conflict(format!(
                    "subnet {} has no gateway, so --gateway {want} cannot be honoured; leave it out",
                    s.id
                ))),
                (_, Some(have)) => answer(have, cidr.prefix_len()),
                // No gateway: an all-zero placeholder, as upstream answers.
                (None, None) => match cidr {
                    IpNet::V4(_) => answer(IpAddr::from([0, 0, 0, 0]), 0),
                    IpNet::V6(_) => answer(IpAddr::from([0u16; 8]), 0),
                },
            }
        }
        None => {
            let prefix: IpNet = pool
                .prefixes
                .iter()
                .filter_map(|p| p.parse::<IpNet>().ok())
                .find(|p| requested.is_none_or(|ip| p.contains(&ip)))
                .ok_or_else(|| match requested {
                    Some(ip) => DriverError::invalid(format!(
                        "--gateway {ip} is outside the pool {}",
                        pool.prefixes.join(", ")
                    )),
                    None => DriverError::unusable(format!("subnetpool {} has no prefix", pool.id)),
                })?;
            let ip = requested.or_else(|| first_host(&prefix)).ok_or_else(|| {
                DriverError::invalid(format!("{prefix} is too small to have a gateway"))
            })?;
            answer(ip, prefix.prefix_len())
        }
    }
}

/// The first usable address of a network, which Neutron also picks as default gateway.
pub(crate) fn first_host(net: &IpNet) -> Option<IpAddr> {
    if net.prefix_len() + 1 >= net.max_prefix_len() {
        return None;
    }
    net.hosts().next().map(|ip| match (net, ip) {
        // IPv6 `hosts()` starts at the subnet-router anycast address; skip it.
        (IpNet::V6(n), IpAddr::V6(a)) if a == n.network() => {
            IpAddr::V6(std::net::Ipv6Addr::from(u128::from(a) + 1))
        }
        _ => ip,
    })
}

/// `ip/prefix` of the subnet the address is on.
pub(crate) fn with_prefix(ip: IpAddr, subnet: &Subnet) -> Result<IpNet> {
    let cidr: IpNet = subnet.cidr.parse().map_err(|_| {
        DriverError::unusable(format!(
            "subnet {} has an unreadable CIDR {:?}",
            subnet.id, subnet.cidr
        ))
    })?;
    IpNet::new(ip, cidr.prefix_len())
        .map_err(|e| DriverError::unusable(format!("address {ip} on subnet {}: {e}", subnet.id)))
}

/// A `shared` option must match what the resource already is.
pub(crate) fn check_shared(what: &str, id: &str, actual: bool, wanted: Option<bool>) -> Result<()> {
    match wanted {
        Some(w) if w != actual => Err(DriverError::conflict(format!(
            "neutron.net.shared={w} conflicts with {what} {id}, which has shared={actual}; \
             drop the option or make them agree"
        ))),
        _ => Ok(()),
    }
}

/// IPAM options as strings (Docker sends `--ipam-opt` values as strings).
fn string_options(map: &serde_json::Map<String, Value>) -> Result<BTreeMap<String, String>> {
    map.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            Value::Bool(b) => Ok((k.clone(), b.to_string())),
            _ if !k.starts_with("neutron.") => Ok((k.clone(), v.to_string())),
            _ => Err(DriverError::invalid(format!("option {k} must be a string"))),
        })
        .collect()
}

/// A Docker endpoint id: what kuryr writes into the device_id of a port it adopts.
fn is_endpoint_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_hosts() {
        assert_eq!(
            first_host(&"10.0.0.0/24".parse().unwrap()),
            Some("10.0.0.1".parse().unwrap())
        );
        assert_eq!(
            first_host(&"fd00::/64".parse().unwrap()),
            Some("fd00::1".parse().unwrap())
        );
        assert_eq!(first_host(&"10.0.0.0/31".parse().unwrap()), None);
    }

    #[test]
    fn pool_response_proposes_the_first_host_as_gateway() {
        let pool = SubnetPool {
            id: "9a7c1f0e-3b2d-4c5e-8f6a-1b2c3d4e5f60".into(),
            ..Default::default()
        };
        let r = pool_response(&pool, "10.1.0.0/16".parse().unwrap(), None).unwrap();
        assert_eq!(r.data[keys::GATEWAY], "10.1.0.1/16");
        assert_eq!(r.pool_id.as_str(), pool.id);
    }
}
