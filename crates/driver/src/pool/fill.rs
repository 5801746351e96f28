//! Filling pools: ports made in bulk (one `POST /v2.0/ports` per batch), bound to this host
//! and tagged as its pool ports from the start, so that a crash at any moment leaves only
//! ports a later scan recognises.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use kuryr_openstack::neutron::{Filters, FixedIp, Port, PortSpec, Subnet};

use super::{Defaults, PoolKey, Pools, POOL_PORT_NAME};
use crate::error::{neutron_err, DriverError, Result};
use crate::mapping::DEVICE_OWNER;

/// The subnets whose pools serve a network's containers: Docker asks IPv4 first, and the
/// IPv6 address of a dual-stack endpoint joins the IPv4 port; IPv6 pools only for IPv6-only
/// networks.
pub fn pool_subnets(subnets: &[Subnet]) -> Vec<&Subnet> {
    let v4: Vec<&Subnet> = subnets.iter().filter(|s| s.ip_version == 4).collect();
    if v4.is_empty() {
        subnets.iter().collect()
    } else {
        v4
    }
}

impl Pools {
    /// The project ports are made in and its `default` security group: what Neutron gives a
    /// port created without groups, made explicit so that pool ports match container ports.
    pub(crate) async fn ensure_defaults(&self) -> Result<()> {
        self.defaults
            .get_or_try_init(|| async {
                let project_id = self
                    .neutron
                    .session()
                    .project_id()
                    .await
                    .map_err(neutron_err("finding kuryr's project"))?
                    .ok_or_else(|| {
                        DriverError::unavailable(
                            "kuryr's credentials name no project; pools need one: set \
                             [neutron] project_name (or project_id)",
                        )
                    })?;
                let groups = self
                    .neutron
                    .security_groups()
                    .list(
                        &Filters::new()
                            .eq("name", "default")
                            .eq("project_id", project_id.as_str()),
                    )
                    .await
                    .map_err(neutron_err("looking up the default security group"))?;
                let mut security_groups: Vec<String> = groups.into_iter().map(|g| g.id).collect();
                security_groups.sort();
                Ok::<_, DriverError>(Defaults {
                    project_id,
                    security_groups,
                })
            })
            .await
            .map(|_| ())
    }

    /// The pool containers on `subnet` take from (learning the defaults if needed).
    pub(crate) async fn key_for(&self, subnet: &Subnet) -> Result<PoolKey> {
        self.ensure_defaults().await?;
        self.wanted_key(subnet)
            .ok_or_else(|| DriverError::bug("the pool defaults are unknown once learnt"))
    }

    /// `populate_on_network_create`: fill the pools of a new network's `subnets` in the
    /// background (its IPv4 subnets, or IPv6 ones when it has no IPv4).
    pub fn prefill(self: &Arc<Self>, subnets: Vec<Subnet>) {
        let pools = self.clone();
        tokio::spawn(async move {
            for subnet in pool_subnets(&subnets) {
                match pools.key_for(subnet).await {
                    Ok(key) => pools.kick_refill(key),
                    Err(e) => {
                        tracing::warn!(subnet = %subnet.id, "pre-filling the port pool: {}", e.report())
                    }
                }
            }
        });
    }

    /// Refill `key`'s pool in the background unless a refill already runs.
    pub fn kick_refill(self: &Arc<Self>, key: PoolKey) {
        if !self.state().filling.insert(key.clone()) {
            return;
        }
        let pools = self.clone();
        tokio::spawn(async move {
            pools.refill(&key).await;
            pools.state().filling.remove(&key);
        });
    }

    /// How many ports bring the pool back to its target ([`super::sizing`]), never beyond
    /// its bound ([`Pools::max_free`]). Ports a scan is putting back count as free; before
    /// the first scan nothing is made (the pool is remembered for the next round), and an
    /// idle pool waits for its next request.
    fn shortfall(&self, key: &PoolKey) -> usize {
        let mut st = self.state();
        if st.closing.contains(&key.network_id) {
            return 0;
        }
        if !st.scanned {
            st.book.open_pool(key.clone());
            return 0;
        }
        let free = st.book.free_count(key) + st.book.entering(key);
        let bound = self.max_free(&st, key);
        let sizing = self.config.sizing();
        let demand = *self.demand(&mut st, key);
        if sizing.is_idle(&demand, Instant::now()) {
            return 0;
        }
        sizing.shortfall(&demand, free, bound)
    }

    async fn refill(self: &Arc<Self>, key: &PoolKey) {
        let _creating = Creating::new(&self.creating);
        loop {
            let n = self.shortfall(key);
            if n == 0 {
                return;
            }
            match self.create(key, n).await {
                Ok(ports) => {
                    for port in self.enter_all(key, ports).await {
                        self.put_free(key.clone(), port);
                    }
                }
                Err(e) => {
                    tracing::warn!(network = %key.network_id, subnet = %key.subnet_id, "filling the port pool: {e}; containers get ports made on demand meanwhile");
                    return;
                }
            }
        }
    }

    /// `kuryr pool populate`: `count` more ports in `subnet`'s pool now (in batches), up to
    /// `ports_pool_max`. Returns how many were added.
    pub async fn populate(self: &Arc<Self>, subnet: &Subnet, count: usize) -> Result<usize> {
        let key = self.key_for(subnet).await?;
        if self.state().closing.contains(&key.network_id) {
            return Err(DriverError::conflict(format!(
                "network {} is being deleted",
                key.network_id
            )));
        }
        let _creating = Creating::new(&self.creating);
        // The operator's ports get the whole idle timeout before they are given back.
        self.touch(&key);
        let batch = self.config.batch.unwrap_or(super::DEFAULT_BATCH);
        let mut added = 0;
        while added < count {
            let room = {
                let st = self.state();
                self.max_free(&st, &key)
                    .saturating_sub(st.book.free_count(&key))
            };
            let n = (count - added).min(batch).min(room);
            if n == 0 {
                break;
            }
            let ports = self.create(&key, n).await.map_err(neutron_err(format!(
                "creating {n} ports on subnet {} (after {added})",
                key.subnet_id
            )))?;
            for port in self.enter_all(&key, ports).await {
                if self.put_free(key.clone(), port) {
                    added += 1;
                }
            }
        }
        Ok(added)
    }

    /// New ports on their way into `key`'s pool, their interfaces readied. A port whose
    /// readying failed is left to the next scan (it is in Neutron, tagged).
    async fn enter_all(self: &Arc<Self>, key: &PoolKey, ports: Vec<Port>) -> Vec<Port> {
        let ids: Vec<String> = {
            let mut st = self.state();
            for port in &ports {
                st.book.enter(&port.id, key.clone());
            }
            ports.iter().map(|p| p.id.clone()).collect()
        };
        let ready = self.ready_all(ports).await;
        let mut st = self.state();
        for id in ids {
            if !ready.iter().any(|p| p.id == id) {
                st.book.forget(&id);
            }
        }
        ready
    }

    /// `n` new pool ports in one bulk request (all or none); tagged in the same request
    /// when Neutron allows, else right after (a port whose tagging fails is deleted).
    async fn create(&self, key: &PoolKey, n: usize) -> Result<Vec<Port>, kuryr_openstack::Error> {
        let _permit = self.bulk.acquire().await;
        let _creating = Creating::new(&self.creating);
        let tags = self.free_tags();
        let inline = self.readiness.tags_on_port_create();
        let spec = PortSpec {
            name: Some(POOL_PORT_NAME.into()),
            network_id: Some(key.network_id.clone()),
            admin_state_up: Some(true),
            device_owner: Some(DEVICE_OWNER.into()),
            binding_host_id: Some(self.host.clone()),
            fixed_ips: Some(vec![FixedIp {
                subnet_id: key.subnet_id.clone(),
                ip_address: String::new(),
            }]),
            security_groups: Some(key.security_groups.clone()),
            tags: inline.then(|| tags.clone()),
            ..Default::default()
        };
        let api = self.neutron.ports();
        let created = api.create_bulk(&vec![spec; n]).await?;
        let mut ports = Vec::with_capacity(created.len());
        for port in created {
            if port.tags.contains(&tags[1]) {
                ports.push(port);
                continue;
            }
            match api.replace_tags(&port.id, &tags).await {
                Ok(t) => ports.push(Port { tags: t, ..port }),
                Err(e) => {
                    tracing::warn!(port = %port.id, "tagging a new pool port: {e}; deleting it");
                    let _ = api.delete(&port.id).await;
                }
            }
        }
        self.state().counters.created += ports.len() as u64;
        Ok(ports)
    }
}

/// Counts a creation under way for as long as it lives (see `Pools::creating`).
struct Creating<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> Creating<'a> {
    fn new(counter: &'a std::sync::atomic::AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Creating(counter)
    }
}

impl Drop for Creating<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
