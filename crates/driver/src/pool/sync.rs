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

use super::book::{judge, Seen, Verdict};
use super::{Job, PoolKey, Pools, POOL_PORT_NAME};

/// How long closing a network waits for refills and jobs of its pools to finish.
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
        self.state().book.free_ids()
    }

    /// Free ports that were free before `listed` was read and are not in it: someone deleted
    /// them in Neutron. They leave the pool, and their interface leaves the host.
    pub async fn drop_vanished(&self, free_before: &HashSet<String>, listed: &[Port]) {
        let listed: HashSet<&str> = listed.iter().map(|p| p.id.as_str()).collect();
        let gone = self.state().book.vanished(free_before, &listed);
        for id in gone {
            tracing::info!(port = %id, "a free pool port was deleted in Neutron; removing its interface");
            self.remove_interface(&id).await;
            self.forget_port(&id);
        }
    }

    /// Whether the daemon tracks this port (free, held, or in a job).
    pub fn is_known(&self, port_id: &str) -> bool {
        self.state().book.knows(port_id)
    }

    /// Explain every port of `ports` the daemon does not know ([`book::judge`]).
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
            let own_key = PoolKey::of(&port);
            let wanted = self.wanted_key_of(&port);
            let seen = Seen {
                ours: port.binding_host_id == self.host,
                free_in_neutron: port.name == POOL_PORT_NAME
                    && port.device_id.is_empty()
                    && !port.tags.iter().any(|t| t.starts_with("kuryr.net.uuid.")),
                with_interface: with_interface.contains(&port.id),
                settling: settling.contains(&port.id),
                endpoint: endpoints.get(&port.id).map(String::as_str),
                creating,
                doubted_at: previous.get(&port.id).copied(),
                poolable: own_key.is_some(),
                wanted: wanted.is_some(),
            };
            match (judge(&port, &seen), own_key, wanted) {
                (Verdict::Leave, _, _) => {}
                (Verdict::Recover, Some(key), _) => {
                    self.state().book.enter(&port.id, key.clone());
                    self.enqueue(Job::Recover {
                        port: Box::new(port),
                        key,
                    });
                }
                (Verdict::Hold { endpoint }, _, Some(key)) => {
                    tracing::info!(port = %port.id, endpoint = %endpoint, "writing the owner of a pool port a container holds");
                    self.hold_for_endpoint(port, key, &endpoint);
                }
                (Verdict::Doubt { revision }, _, _) => {
                    doubt.insert(port.id.clone(), revision);
                }
                (Verdict::Recycle, _, Some(key)) => {
                    tracing::info!(port = %port.id, "recycling a pool port nobody holds");
                    self.state().book.recycle_found(&port);
                    self.enqueue(Job::Recycle {
                        port: Box::new(port),
                        key,
                        owned: false,
                        // Unknown: its security groups tell.
                        external: false,
                    });
                }
                (verdict, _, _) => {
                    tracing::info!(port = %port.id, host = %port.binding_host_id, ?verdict, "deleting a pool port in doubt");
                    self.state().book.deleting(&port);
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

    /// Keys of all pools, to keep them at their size.
    pub fn keys(&self) -> Vec<PoolKey> {
        self.state().book.pool_keys()
    }

    /// Before a network is deleted or given back: no more refills or recycling for it, and
    /// its free pool ports deleted: this host's, and with `every_host` (the Neutron network
    /// itself goes, and Neutron refuses to delete a network that has ports) every host's.
    /// A network that stays (one the user made, which other hosts' and control planes'
    /// Docker networks may still use) keeps the other hosts' pool ports.
    /// Returns how many ports were deleted; [`Pools::reopen_network`] undoes the closing.
    pub async fn close_network(
        self: &Arc<Self>,
        network_id: &str,
        every_host: bool,
    ) -> crate::Result<usize> {
        self.state().closing.insert(network_id.to_owned());
        // Refills and jobs under way end by deleting their ports (the network is closing);
        // Neutron refuses to delete a network while they still exist.
        let started = Instant::now();
        while (self.filling(network_id) || self.state().book.in_jobs_on(network_id) > 0)
            && started.elapsed() < FILL_DRAIN
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let local: Vec<String> = {
            let mut st = self.state();
            st.demand.retain(|key, _| key.network_id != network_id);
            st.book.drain_free(|key| key.network_id == network_id)
        };
        let mut filters = Filters::new()
            .eq("network_id", network_id)
            .eq("name", POOL_PORT_NAME)
            .fields(["id", "device_id"]);
        if !every_host {
            // This host's ports the daemon may not know yet (a scan after a restart).
            filters = filters.tags([self.tag()]);
        }
        let others =
            self.neutron
                .ports()
                .list(&filters)
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

    /// Delete these pool ports of `network_id`, a network no container of this host can use
    /// (none of Docker's networks maps it): the free ones leave their pool first, so that
    /// none is handed out meanwhile; one the daemon counts as held or in a job stays. Returns
    /// how many were deleted.
    pub async fn clear_ports(self: &Arc<Self>, network_id: &str, port_ids: &[String]) -> usize {
        let wanted: HashSet<&str> = port_ids.iter().map(String::as_str).collect();
        let ids: Vec<String> = {
            let mut st = self.state();
            let unknown: Vec<String> = port_ids
                .iter()
                .filter(|id| !st.book.knows(id))
                .cloned()
                .collect();
            let mut ids = st.book.drain_free_ids(&wanted);
            ids.extend(unknown);
            ids
        };
        tracing::info!(network = %network_id, ports = ids.len(), "deleting this host's pool ports on a network none of Docker's networks maps");
        self.delete_all(ids).await
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
                        && st.book.entering(key) == 0
                })
                .map(|(key, _)| key.clone())
                .collect();
            let mut ids = Vec::new();
            for key in idle {
                st.demand.remove(&key);
                ids.extend(st.book.drain_free(|k| *k == key));
                st.book.close_empty_pool(&key);
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
            self.state()
                .book
                .drain_free(|key| network_id.is_none_or(|n| n == key.network_id))
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
