//! The pools seen from outside the plugin protocol: `kuryr pool list|populate|free`
//! (through the daemon's admin socket) and the loop that keeps pools in step with Neutron.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

use kuryr_binding::veth_names;
use kuryr_libnetwork::DockerId;
use kuryr_openstack::neutron::{Network, Port, Subnet};
use serde::{Deserialize, Serialize};

use crate::error::{DriverError, Result};
use crate::mapping::is_uuid;
use crate::options::Named;
use crate::pool::{pool_subnets, unix_now, HostMark, PoolCounters, PoolInfo};
use crate::Driver;

/// How often the networks and subnets in use are read again.
const CACHE_REFRESH: Duration = Duration::from_secs(60);

/// `kuryr pool list`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PoolReport {
    pub enabled: bool,
    pub pools: Vec<PoolInfo>,
    pub counters: PoolCounters,
}

/// `kuryr pool populate`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Populated {
    pub network_id: String,
    pub subnet_id: String,
    pub added: usize,
    pub free: usize,
}

/// What the host says of pool ports, for a scan (see [`Driver::host_view`]).
#[derive(Debug, Default)]
struct HostView {
    held: HashSet<String>,
    settling: HashSet<String>,
    endpoints: HashMap<String, String>,
}

impl Driver {
    pub fn pool_report(&self) -> PoolReport {
        match &self.pools {
            Some(p) => PoolReport {
                enabled: true,
                pools: p.list(),
                counters: p.counters(),
            },
            None => PoolReport {
                enabled: false,
                pools: Vec::new(),
                counters: PoolCounters::default(),
            },
        }
    }

    /// Add `count` ports to the pool of `network` (a Neutron network id or name, or a Docker
    /// network id), on `subnet` (id or CIDR) or on the subnets Docker takes addresses from.
    pub async fn populate_pool(
        &self,
        network: &str,
        subnet: Option<&str>,
        count: usize,
    ) -> Result<Vec<Populated>> {
        let pools = self.pools_or_error()?;
        self.readiness.ready().await?;
        let network = self.resolve_network(network).await?;
        let subnets = self.subnets_of(&network.id).await?;
        let chosen: Vec<&Subnet> = match subnet {
            Some(s) => {
                let found = subnets
                    .iter()
                    .find(|x| x.id == s || crate::lookup::same_cidr(&x.cidr, s))
                    .ok_or_else(|| {
                        DriverError::not_found(format!(
                            "network {} has no subnet {s}; its subnets are {}",
                            network.id,
                            subnets
                                .iter()
                                .map(|x| format!("{} ({})", x.id, x.cidr))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    })?;
                vec![found]
            }
            None => pool_subnets(&subnets),
        };
        if chosen.is_empty() {
            return Err(DriverError::not_found(format!(
                "network {} has no subnet to take addresses from",
                network.id
            )));
        }
        let mut out = Vec::new();
        for subnet in chosen {
            let added = pools.populate(subnet, count).await?;
            out.push(Populated {
                network_id: network.id.clone(),
                subnet_id: subnet.id.clone(),
                added,
                free: pools.free_count(&network.id),
            });
        }
        Ok(out)
    }

    /// Delete the free ports of `network`'s pools (all pools: None); returns how many.
    pub async fn free_pools(&self, network: Option<&str>) -> Result<usize> {
        let pools = self.pools_or_error()?;
        let network_id = match network {
            Some(n) => Some(self.resolve_network(n).await?.id),
            None => None,
        };
        Ok(pools.free(network_id.as_deref()).await)
    }

    /// At a clean stop, the free ports of self-sizing pools go back to Neutron: a daemon that
    /// is not running holds no addresses, and nothing of its blocks another driver (upstream's,
    /// after a swap back) from deleting a network. Pools of a fixed size (`ports_pool_min`)
    /// keep their ports for the next start. Returns how many ports were deleted.
    pub async fn give_back_pools_at_stop(&self) -> usize {
        match &self.pools {
            Some(pools) if pools.config().min.is_none() => pools.free(None).await,
            _ => 0,
        }
    }

    /// Keep the pools in step with Neutron, forever: recover at start, then every
    /// `ports_pool_update_frequency` drop free ports deleted in Neutron, explain unknown pool
    /// ports, give idle pools back and top the others up.
    pub async fn maintain_pools(&self) {
        let Some(pools) = self.pools.clone() else {
            return;
        };
        loop {
            if !self.readiness.is_ready() {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            if let Err(e) = pools.ensure_defaults().await {
                tracing::warn!("port pools: {}", e.report());
            }
            let free_before = pools.free_ids();
            match pools.neutron_ports().await {
                Ok(ports) => {
                    pools.drop_vanished(&free_before, &ports).await;
                    let view = self.host_view(&ports).await;
                    pools.reconcile(ports, &view.held, &view.settling, &view.endpoints);
                }
                Err(e) => tracing::warn!("port pools: listing this host's pool ports: {e}"),
            }
            pools.give_back_idle().await;
            for key in pools.keys() {
                pools.kick_refill(key);
            }
            tokio::time::sleep(pools.config().update_frequency).await;
        }
    }

    /// Keep what the driver remembers of networks and subnets in step with Neutron, forever.
    pub async fn maintain_cache(&self) {
        loop {
            tokio::time::sleep(CACHE_REFRESH).await;
            if self.readiness.is_ready() {
                self.refresh_cache().await;
            }
        }
    }

    /// Read again what the driver remembers of the networks used since the last time, so
    /// that a change an operator makes (a subnet's gateway or routes, a network's MTU)
    /// reaches new containers; a network that is gone is forgotten.
    pub(crate) async fn refresh_cache(&self) {
        let (networks, subnet_networks) = self.cache.take_used();
        for (docker_id, network_id) in networks {
            match self.neutron.networks().get_opt(&network_id).await {
                Ok(Some(network)) => self.cache.set_network(&docker_id, &network),
                Ok(None) => self.cache.forget_network(&docker_id, &network_id),
                Err(e) => tracing::debug!(network = %network_id, "refreshing: {e}"),
            }
        }
        for network_id in subnet_networks {
            match self.subnets_of(&network_id).await {
                Ok(subnets) => self.cache.set_subnets(&network_id, &subnets),
                Err(e) => tracing::debug!(network = %network_id, "refreshing: {}", e.report()),
            }
        }
    }

    /// What the host says of the pool ports the daemon does not know (after a restart):
    /// those a container has (its end of the veth in another namespace, or plugged by the
    /// usual path), with the endpoint where the host tells it (the interface's mark, or the
    /// Open vSwitch interface's `vm-uuid`) and Neutron does not show it yet; and those
    /// marked with an endpoint but home again, which wait for a second scan.
    async fn host_view(&self, ports: &[Port]) -> HostView {
        let mut view = HostView::default();
        let Some(pools) = &self.pools else {
            return view;
        };
        let Ok(binder) = self.binder().await else {
            return view;
        };
        let now = unix_now();
        for port in ports {
            if pools.is_known(&port.id) {
                continue;
            }
            let Ok(Some(link)) = binder.netlink.link(&veth_names(&port.id).host).await else {
                continue;
            };
            let away = link.peer_netns_id.is_some();
            let mark = HostMark::from_alias(link.alias.as_deref());
            let endpoint = match (mark, away) {
                (HostMark::Free, false) => continue,
                // Its address went to Docker just before the daemon stopped; the endpoint
                // may still come (Docker retries), so it is not free yet.
                (mark @ HostMark::Requested(_), false) => {
                    if mark.requested_recently(now) {
                        view.held.insert(port.id.clone());
                    }
                    continue;
                }
                (HostMark::Endpoint(_), false) => {
                    view.settling.insert(port.id.clone());
                    continue;
                }
                (HostMark::Endpoint(endpoint), true) => Some(endpoint),
                (HostMark::Free | HostMark::Requested(_) | HostMark::Unmarked, _) => {
                    match binder.ovsdb.endpoint_of(&port.id).await {
                        Ok(endpoint) => endpoint,
                        Err(e) => {
                            tracing::debug!(port = %port.id, "reading its OVS interface: {e}");
                            None
                        }
                    }
                }
            };
            view.held.insert(port.id.clone());
            let tagged = port.tags.iter().any(|t| t.starts_with("kuryr.net.uuid."));
            if let (Some(endpoint), false) = (endpoint, tagged) {
                view.endpoints.insert(port.id.clone(), endpoint);
            }
        }
        view
    }

    fn pools_or_error(&self) -> Result<&std::sync::Arc<crate::pool::Pools>> {
        self.pools.as_ref().ok_or_else(|| {
            DriverError::invalid(
                "port pools are off; set [vif_pool] enabled = true in kuryr.conf (bare metal, \
                 default_port_driver = veth) and restart kuryr",
            )
        })
    }

    /// A network as an operator names it: Neutron id, Docker network id, or Neutron name.
    async fn resolve_network(&self, name: &str) -> Result<Network> {
        if !is_uuid(name) && name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            let id = DockerId::from_str(name).map_err(DriverError::invalid)?;
            return self.network_of(&id).await?.ok_or_else(|| {
                DriverError::not_found(format!(
                    "no Neutron network carries the tags of Docker network {name}"
                ))
            });
        }
        let named = if is_uuid(name) {
            Named::Id(name.to_owned())
        } else {
            Named::Name(name.to_owned())
        };
        self.named(self.neutron.networks(), "network", &named, |n: &Network| {
            &n.id
        })
        .await
    }
}
