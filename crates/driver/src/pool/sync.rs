//! Pools against Neutron: at start and every `ports_pool_update_frequency`, this host's pool
//! ports are listed and every one the daemon does not know is explained: a free one joins
//! its pool (after a restart, all of them do); one that a container holds (owned by an
//! endpoint, its interface present on this host) is left alone; any other is in doubt, and
//! recycled or deleted only when a second scan finds it unchanged, so that a port caught
//! between two steps of a call is never taken from under it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kuryr_openstack::neutron::{Filters, Port};

use super::{Job, PoolKey, Pools, POOL_PORT_NAME};

/// How long closing a network waits for refills of its pools to finish.
const FILL_DRAIN: Duration = Duration::from_secs(120);
const CONCURRENT_DELETES: usize = 8;

impl Pools {
    /// This host's pool ports, as Neutron has them.
    pub async fn neutron_ports(&self) -> Result<Vec<Port>, kuryr_openstack::Error> {
        self.neutron
            .ports()
            .list(&Filters::new().tags([self.tag()]))
            .await
    }

    /// The free ports, before a listing: those the listing misses were deleted from under
    /// the daemon (see [`Pools::drop_vanished`]).
    pub fn free_ids(&self) -> HashSet<String> {
        self.state()
            .free
            .values()
            .flat_map(|ports| ports.iter().map(|p| p.id.clone()))
            .collect()
    }

    /// Free ports that were free before `listed` was read and are not in it: someone deleted
    /// them in Neutron. They leave the pool, and their interface leaves the host.
    pub async fn drop_vanished(&self, free_before: &HashSet<String>, listed: &[Port]) {
        let listed: HashSet<&str> = listed.iter().map(|p| p.id.as_str()).collect();
        let gone: Vec<String> = {
            let mut st = self.state();
            let mut gone = Vec::new();
            for ports in st.free.values_mut() {
                ports.retain(|p| {
                    let vanished = free_before.contains(&p.id) && !listed.contains(p.id.as_str());
                    if vanished {
                        gone.push(p.id.clone());
                    }
                    !vanished
                });
            }
            gone
        };
        for id in gone {
            tracing::info!(port = %id, "a free pool port was deleted in Neutron; removing its interface");
            self.remove_interface(&id).await;
            self.forget_port(&id);
        }
    }

    /// Whether the daemon tracks this port (free, held, or in a job).
    pub fn is_known(&self, port_id: &str) -> bool {
        self.state().known.contains(port_id)
    }

    /// Explain every port of `ports` the daemon does not know (see the module comment).
    /// `with_interface`: the ports whose host interface says a container has them (marked
    /// with an endpoint, or plugged without a mark); a free port's marked interface does not
    /// count. `settling`: ports whose interface is marked with an endpoint but home again
    /// (a container just started or stopped): in doubt until a second scan.
    /// `endpoints`: for ports a container holds that Neutron does not show as owned, the
    /// endpoint (from the host); the daemon holds them again and writes the owner.
    pub fn reconcile(
        self: &Arc<Self>,
        ports: Vec<Port>,
        with_interface: &HashSet<String>,
        settling: &HashSet<String>,
        endpoints: &HashMap<String, String>,
    ) {
        let mut doubt = HashMap::new();
        let previous = std::mem::take(&mut self.state().doubt);
        // New ports of a fill under way are not recovered ones: the next scan sees.
        let creating = self.creating.load(std::sync::atomic::Ordering::SeqCst) > 0;
        for port in ports {
            if self.is_known(&port.id) {
                continue;
            }
            let key = PoolKey::of(&port);
            let ours = port.binding_host_id == self.host;
            let free_like = port.name == POOL_PORT_NAME
                && port.device_id.is_empty()
                && ours
                && !port.tags.iter().any(|t| t.starts_with("kuryr.net.uuid."));
            let free_like =
                free_like && !with_interface.contains(&port.id) && !settling.contains(&port.id);
            if free_like && creating {
                continue;
            }
            if let (true, Some(key)) = (free_like, key.clone()) {
                {
                    let mut st = self.state();
                    st.known.insert(port.id.clone());
                    *st.recovering.entry(key.clone()).or_default() += 1;
                }
                self.enqueue(Job::Recover {
                    port: Box::new(port),
                    key,
                });
                continue;
            }
            // A container has it; after a crash its owner may not be written yet.
            if with_interface.contains(&port.id) {
                if let (Some(endpoint), Some(key)) =
                    (endpoints.get(&port.id), self.wanted_key_of(&port))
                {
                    tracing::info!(port = %port.id, endpoint = %endpoint, "writing the owner of a pool port a container holds");
                    self.hold_for_endpoint(port, key, endpoint);
                }
                continue;
            }
            if previous.get(&port.id) != Some(&port.revision_number) {
                doubt.insert(port.id.clone(), port.revision_number);
                continue;
            }
            // Seen twice, unchanged, and no container holds it.
            self.state().known.insert(port.id.clone());
            let wanted = self.wanted_key_of(&port);
            match (ours, wanted) {
                (true, Some(key)) => {
                    tracing::info!(port = %port.id, "recycling a pool port nobody holds");
                    self.enqueue(Job::Recycle {
                        port: Box::new(port),
                        key,
                    });
                }
                _ => {
                    tracing::info!(port = %port.id, host = %port.binding_host_id, "deleting a pool port in doubt");
                    self.enqueue(Job::Delete { port_id: port.id });
                }
            }
        }
        let mut st = self.state();
        st.doubt = doubt;
        st.scanned = true;
    }

    /// The pool a port in doubt goes back to: its subnet's, with the default groups.
    pub(super) fn wanted_key_of(&self, port: &Port) -> Option<PoolKey> {
        let d = self.defaults.get()?;
        let key = PoolKey::of(port)?;
        Some(PoolKey {
            project_id: d.project_id.clone(),
            security_groups: d.security_groups.clone(),
            ..key
        })
    }

    /// Keys of all pools, to keep them at `ports_pool_min`.
    pub fn keys(&self) -> Vec<PoolKey> {
        self.state().free.keys().cloned().collect()
    }

    /// Before a network is deleted: no more refills or recycling for it, and its free pool
    /// ports (of every host: Neutron refuses to delete a network that has ports) deleted.
    /// Returns how many ports were deleted; [`Pools::reopen_network`] undoes the closing.
    pub async fn close_network(self: &Arc<Self>, network_id: &str) -> crate::Result<usize> {
        let local: Vec<String> = {
            let mut st = self.state();
            st.closing.insert(network_id.to_owned());
            st.demand.retain(|key, _| key.network_id != network_id);
            let mut ids = Vec::new();
            st.free.retain(|key, ports| {
                if key.network_id == network_id {
                    ids.extend(ports.drain(..).map(|p| p.id));
                    false
                } else {
                    true
                }
            });
            ids
        };
        let started = Instant::now();
        while self.filling(network_id) && started.elapsed() < FILL_DRAIN {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let others = self
            .neutron
            .ports()
            .list(
                &Filters::new()
                    .eq("network_id", network_id)
                    .eq("name", POOL_PORT_NAME),
            )
            .await
            .map_err(crate::error::neutron_err(format!(
                "listing the pool ports of network {network_id}"
            )))?;
        let mut ids: HashSet<String> = local.into_iter().collect();
        ids.extend(
            others
                .into_iter()
                .filter(|p| p.device_id.is_empty())
                .map(|p| p.id),
        );
        let deleted = self.delete_all(ids.into_iter().collect()).await;
        Ok(deleted)
    }

    /// Pools no container took a port from for `ports_pool_idle_timeout`: their free ports
    /// go back to Neutron (with their interfaces), and the pools start over at their
    /// network's next address request. Returns how many ports were deleted.
    pub async fn give_back_idle(self: &Arc<Self>) -> usize {
        let sizing = self.config.sizing();
        let now = Instant::now();
        let ids: Vec<String> = {
            let mut st = self.state();
            let idle: Vec<PoolKey> = st
                .demand
                .iter()
                .filter(|(key, demand)| {
                    sizing.is_idle(demand, now)
                        && !st.filling.contains(*key)
                        && st.recovering.get(*key).copied().unwrap_or(0) == 0
                })
                .map(|(key, _)| key.clone())
                .collect();
            let mut ids = Vec::new();
            for key in idle {
                st.demand.remove(&key);
                if let Some(ports) = st.free.remove(&key) {
                    ids.extend(ports.into_iter().map(|p| p.id));
                }
            }
            ids
        };
        if ids.is_empty() {
            return 0;
        }
        tracing::info!(
            ports = ids.len(),
            "giving the free ports of idle pools back to Neutron ([vif_pool] ports_pool_idle_timeout)"
        );
        self.delete_all(ids).await
    }

    /// The network was deleted (or its deletion failed): forget that it was closing.
    pub fn reopen_network(&self, network_id: &str) {
        self.state().closing.remove(network_id);
    }

    /// `kuryr pool free`: delete the free ports of `network_id`'s pools (all pools: None).
    pub async fn free(self: &Arc<Self>, network_id: Option<&str>) -> usize {
        let ids: Vec<String> = {
            let mut st = self.state();
            let mut ids = Vec::new();
            for (key, ports) in st.free.iter_mut() {
                if network_id.is_none_or(|n| n == key.network_id) {
                    ids.extend(ports.drain(..).map(|p| p.id));
                }
            }
            ids
        };
        self.delete_all(ids).await
    }

    fn filling(&self, network_id: &str) -> bool {
        self.state()
            .filling
            .iter()
            .any(|k| k.network_id == network_id)
    }

    /// Delete ports, a few at a time; returns how many are gone.
    async fn delete_all(self: &Arc<Self>, ids: Vec<String>) -> usize {
        let mut deleted = 0;
        for chunk in ids.chunks(CONCURRENT_DELETES) {
            let mut set = tokio::task::JoinSet::new();
            for id in chunk {
                let pools = self.clone();
                let id = id.clone();
                set.spawn(async move {
                    pools.remove_interface(&id).await;
                    let gone = match pools.neutron.ports().delete(&id).await {
                        Ok(_) => true,
                        Err(e) if e.is_not_found() => true,
                        Err(e) => {
                            tracing::warn!(port = %id, "deleting a pool port: {e}");
                            false
                        }
                    };
                    pools.forget_port(&id);
                    gone
                });
            }
            while let Some(r) = set.join_next().await {
                if matches!(r, Ok(true)) {
                    deleted += 1;
                }
            }
        }
        self.state().counters.deleted += deleted as u64;
        deleted
    }
}
