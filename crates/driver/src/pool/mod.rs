//! Pools of pre-created ports, so that a container start asks Neutron nothing instead of a
//! create, an update and tags.
//!
//! A pool holds ports of one subnet, project and security-group set, bound to this host
//! (`binding:host_id`, `device_owner = compute:kuryr`) and tagged as this host's pool ports
//! ([`pool_tag`]), so that a restarted daemon finds them in Neutron ([`sync`]). Ports
//! are made in bulk ([`fill`]) off the container's path, handed out by
//! [`Pools::take`], and recycled or deleted in the background once released ([`jobs`]).
//!
//! A free port of a plain Open vSwitch binding waits plugged in ([`interfaces`]): its veth
//! pair exists and sits on the bridge, so the agent has wired it and Neutron shows it ACTIVE
//! before a container takes it, and a container start or stop leaves it as it is (the host
//! end is relabelled in the background). The owner is written to Neutron once a container
//! has held a port for `owner_write_delay`.
//!
//! Every port the pools know is in exactly one place: free in a pool, held by a container,
//! or in a background job ([`book`]), so a Neutron scan never adds a port twice and no port
//! is handed out twice.

mod book;
mod fill;
mod interfaces;
mod jobs;
pub mod sizing;
mod sync;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use kuryr_openstack::neutron::{Neutron, Port, Subnet};
use serde::{Deserialize, Serialize};
use tokio::sync::{OnceCell, Semaphore};

use crate::host::Host;
use crate::mapping::DEVICE_OWNER;
use crate::readiness::Readiness;

use book::{Book, Put};
pub use fill::pool_subnets;
pub use interfaces::{unix_now, HostMark, FREE_ALIAS};
pub use jobs::Job;
use sizing::{Demand, Sizing};

/// `[vif_pool]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// `ports_pool_min`: below this many free ports a pool is refilled; None (the default):
    /// each pool sizes itself by demand ([`sizing`]).
    pub min: Option<usize>,
    /// `ports_pool_max`: above this many free ports released ones are deleted (0: a quarter
    /// of the subnet, [`subnet_cap`], and [`sizing::AUTO_MAX`] for self-sizing pools).
    pub max: usize,
    /// `ports_pool_batch`: ports per bulk request; None: a refill makes what its pool lacks
    /// in one request, and `kuryr pool populate` [`DEFAULT_BATCH`] at a time.
    pub batch: Option<usize>,
    /// `ports_pool_update_frequency`: how often pools are checked against Neutron.
    pub update_frequency: Duration,
    /// `ports_pool_idle_timeout`: a pool no container took a port from for this long gives
    /// its free ports back to Neutron (zero: never).
    pub idle_timeout: Duration,
    /// `populate_on_network_create`: fill a network's pool when Docker creates it.
    pub populate_on_network_create: bool,
    /// `owner_write_delay`: how long a container holds a port before Neutron is told (a
    /// container gone sooner never costs a Neutron write; its interface tells meanwhile).
    pub owner_write_delay: Duration,
    /// Which daemon of the host owns the pools: empty for the default plugin name, else
    /// the plugin name, so that two daemons on one host never take each other's ports.
    pub owner: String,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            min: None,
            max: 0,
            batch: None,
            update_frequency: Duration::from_secs(20),
            idle_timeout: sizing::AUTO_IDLE_TIMEOUT,
            populate_on_network_create: false,
            owner_write_delay: Duration::from_secs(2),
            owner: String::new(),
        }
    }
}

impl PoolConfig {
    fn sizing(&self) -> Sizing {
        Sizing {
            fixed_min: self.min,
            batch: self.batch,
            idle_timeout: self.idle_timeout,
        }
    }
}

/// Ports per bulk request of `kuryr pool populate` without `ports_pool_batch`.
pub const DEFAULT_BATCH: usize = 10;

/// Name of a free pool port (a container's port is named as IPAM's, `kuryr-unbound-port`).
pub const POOL_PORT_NAME: &str = "kuryr-pool-port";
const POOL_TAG_PREFIX: &str = "kuryr.pool:";
/// Neutron tags are at most 60 characters.
const MAX_TAG_LEN: usize = 60;
/// Bulk creations at once, over all pools: Neutron is shared with everyone else.
const CONCURRENT_BULK_CREATES: usize = 2;

/// The tag of the pool ports of this host (and daemon, see [`PoolConfig::owner`]).
pub fn pool_tag(host: &str, owner: &str) -> String {
    let mut tag = if owner.is_empty() {
        format!("{POOL_TAG_PREFIX}{host}")
    } else {
        format!("{POOL_TAG_PREFIX}{host}:{owner}")
    };
    let mut end = MAX_TAG_LEN.min(tag.len());
    while !tag.is_char_boundary(end) {
        end -= 1;
    }
    tag.truncate(end);
    tag
}

/// Whether a tag marks a pool port (of any host).
pub fn is_pool_tag(tag: &str) -> bool {
    tag.starts_with(POOL_TAG_PREFIX)
}

/// What makes ports interchangeable: one container may take any port of its pool.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PoolKey {
    pub network_id: String,
    pub subnet_id: String,
    pub project_id: String,
    /// Sorted.
    pub security_groups: Vec<String>,
}

impl PoolKey {
    /// The pool a port belongs in, if it has exactly one address (pool ports do).
    pub fn of(port: &Port) -> Option<PoolKey> {
        let [ip] = port.fixed_ips.as_slice() else {
            return None;
        };
        let mut security_groups = port.security_groups.clone();
        security_groups.sort();
        Some(PoolKey {
            network_id: port.network_id.clone(),
            subnet_id: ip.subnet_id.clone(),
            project_id: port.project_id.clone(),
            security_groups,
        })
    }
}

/// A port a container holds, from RequestAddress until ReleaseAddress.
#[derive(Debug, Clone)]
pub struct Held {
    pub port: Port,
    pub key: PoolKey,
    /// Set by CreateEndpoint, cleared by DeleteEndpoint.
    pub endpoint: Option<String>,
    /// Whether ProgramExternalConnectivity gave the endpoint an exposed-ports group.
    pub exposed: bool,
    /// Whether the endpoint may have had port forwardings or a floating IP on the port's
    /// address: the port is then deleted, not recycled (unknown after a restart: the recycle
    /// job looks at its security groups).
    pub external: bool,
}

impl Held {
    pub fn address(&self) -> Option<IpAddr> {
        self.port.fixed_ips.first()?.ip_address.parse().ok()
    }
}

/// One pool, for `kuryr pool list`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PoolInfo {
    #[serde(flatten)]
    pub key: PoolKey,
    pub host: String,
    pub free: usize,
    pub held: usize,
    /// How many free ports the pool keeps now (see [`sizing`]).
    #[serde(default)]
    pub target: usize,
    pub filling: bool,
}

/// Counters since start, for `kuryr stats`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PoolCounters {
    pub hits: u64,
    pub misses: u64,
    pub created: u64,
    pub recycled: u64,
    pub deleted: u64,
    pub recovered: u64,
}

#[derive(Debug, Default)]
struct State {
    /// Every port the pools know, and where it stands.
    book: Book,
    /// Pools being filled now.
    filling: HashSet<PoolKey>,
    /// Networks being deleted: nothing is added to their pools.
    closing: HashSet<String>,
    /// Pool ports Neutron shows in a state kuryr cannot explain, with the revision seen.
    doubt: HashMap<String, u64>,
    /// Networks' MTUs, for the veth pairs of their free ports.
    mtu: HashMap<String, u32>,
    /// Whether a scan of Neutron has counted this host's pool ports since the start: no
    /// refill before, or every restart would add a pool's worth of ports.
    scanned: bool,
    /// The bound of each subnet's pool when `ports_pool_max` sets none (see [`subnet_cap`]).
    caps: HashMap<String, usize>,
    /// Each pool's wanted size and last use ([`sizing`]).
    demand: HashMap<PoolKey, Demand>,
    counters: PoolCounters,
}

/// Without `ports_pool_max`, a pool holds at most a quarter of its subnet's addresses, so
/// that pools never exhaust a subnet.
pub fn subnet_cap(cidr: &str) -> usize {
    let Ok(net) = cidr.parse::<ipnet::IpNet>() else {
        return usize::MAX;
    };
    let host_bits = u32::from(net.max_prefix_len() - net.prefix_len());
    if host_bits >= 40 {
        return usize::MAX;
    }
    // Less the network, broadcast and gateway addresses.
    let addresses = (1u64 << host_bits).saturating_sub(3);
    usize::try_from(addresses / 4).unwrap_or(usize::MAX).max(1)
}

/// The pools of this daemon (one per host).
#[derive(Debug)]
pub struct Pools {
    neutron: Neutron,
    host_side: Arc<Host>,
    host: String,
    config: PoolConfig,
    state: Mutex<State>,
    /// The project ports are made in and its `default` security group(s): what a container
    /// port gets when nothing else is asked.
    defaults: OnceCell<Defaults>,
    bulk: Semaphore,
    workers: OnceLock<Vec<tokio::sync::mpsc::UnboundedSender<Job>>>,
    /// The daemon's view of Neutron: whether it takes tags in a (bulk) create.
    readiness: Arc<Readiness>,
    /// Fills and populates under way: their new ports are in Neutron before the daemon
    /// knows them, so a scan meanwhile must not take them for recovered ones.
    creating: std::sync::atomic::AtomicUsize,
}

#[derive(Debug, Clone)]
struct Defaults {
    project_id: String,
    security_groups: Vec<String>,
}

impl Pools {
    pub(crate) fn new(
        neutron: Neutron,
        host_side: Arc<Host>,
        readiness: Arc<Readiness>,
        host: String,
        config: PoolConfig,
    ) -> Arc<Pools> {
        Arc::new(Pools {
            neutron,
            host_side,
            host,
            config,
            state: Mutex::new(State::default()),
            defaults: OnceCell::new(),
            bulk: Semaphore::new(CONCURRENT_BULK_CREATES),
            workers: OnceLock::new(),
            readiness,
            creating: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn tag(&self) -> String {
        pool_tag(&self.host, &self.config.owner)
    }

    /// The tags of a free pool port.
    fn free_tags(&self) -> Vec<String> {
        vec![DEVICE_OWNER.to_string(), self.tag()]
    }

    /// The most free ports `key`'s pool may hold: `ports_pool_max`, else its subnet's cap
    /// (and [`sizing::AUTO_MAX`] for a self-sizing pool).
    fn max_free(&self, st: &State, key: &PoolKey) -> usize {
        if self.config.max > 0 {
            return self.config.max;
        }
        let cap = st.caps.get(&key.subnet_id).copied().unwrap_or(usize::MAX);
        if self.config.min.is_none() {
            cap.min(sizing::AUTO_MAX)
        } else {
            cap
        }
    }

    /// `key`'s demand, made now if the pool has none yet (a new pool, or one found by a
    /// scan after a restart: it gets the whole idle timeout before it is given back).
    fn demand<'s>(&self, st: &'s mut State, key: &PoolKey) -> &'s mut Demand {
        let bound = self.max_free(st, key);
        let sizing = self.config.sizing();
        st.demand
            .entry(key.clone())
            .or_insert_with(|| sizing.new_demand(Instant::now(), bound))
    }

    /// Count now as the pool's last use.
    fn touch(&self, key: &PoolKey) {
        let mut st = self.state();
        self.demand(&mut st, key).last_take = Instant::now();
    }

    /// The pool a container on `subnet` takes from, once the defaults are known.
    fn wanted_key(&self, subnet: &Subnet) -> Option<PoolKey> {
        self.state()
            .caps
            .entry(subnet.id.clone())
            .or_insert_with(|| subnet_cap(&subnet.cidr));
        let d = self.defaults.get()?;
        Some(PoolKey {
            network_id: subnet.network_id.clone(),
            subnet_id: subnet.id.clone(),
            project_id: d.project_id.clone(),
            security_groups: d.security_groups.clone(),
        })
    }

    /// A free port of `subnet`'s pool, now held; starts a refill when the pool runs low.
    /// None (a miss) when the pool is empty: the caller creates a port itself.
    pub fn take(self: &Arc<Self>, subnet: &Subnet) -> Option<Port> {
        let Some(key) = self.wanted_key(subnet) else {
            // Defaults unknown yet (Neutron just came up): learn them, then fill.
            let pools = self.clone();
            let subnet = subnet.clone();
            tokio::spawn(async move {
                if pools.ensure_defaults().await.is_ok() {
                    if let Some(key) = pools.wanted_key(&subnet) {
                        pools.kick_refill(key);
                    }
                }
            });
            self.state().counters.misses += 1;
            return None;
        };
        let (port, low) = {
            let mut st = self.state();
            let closing = st.closing.contains(&key.network_id);
            st.book.open_pool(key.clone());
            let port = if closing { None } else { st.book.take(&key) };
            let left = st.book.free_count(&key);
            let bound = self.max_free(&st, &key);
            let sizing = self.config.sizing();
            // The take that makes a pool is no demand beyond its start.
            let in_use = st.demand.contains_key(&key);
            let demand = self.demand(&mut st, &key);
            if in_use {
                sizing.on_take(demand, Instant::now(), port.is_some(), bound);
            }
            let low = !closing && left < demand.target;
            if port.is_some() {
                st.counters.hits += 1;
            } else {
                st.counters.misses += 1;
            }
            (port, low)
        };
        if low {
            self.kick_refill(key);
        }
        port
    }

    /// Stop tracking a port: it is gone, or the usual path took it over.
    /// Returns whether the port's interface waited plugged in.
    pub fn forget_port(&self, port_id: &str) -> bool {
        self.state().book.forget(port_id)
    }

    /// The held port with `ip` on `network_id`.
    pub fn held_by_address(&self, network_id: &str, ip: IpAddr) -> Option<Held> {
        self.state().book.held_by_address(network_id, ip).cloned()
    }

    /// The held port of an endpoint.
    pub fn held_by_endpoint(&self, endpoint_id: &str) -> Option<Held> {
        self.state().book.held_by_endpoint(endpoint_id).cloned()
    }

    /// CreateEndpoint made the container's interface: the endpoint owns the port; Neutron
    /// learns it in the background (tags and `device_id`).
    pub fn bind_endpoint(self: &Arc<Self>, port_id: &str, endpoint_id: &str) {
        let Some(tags) = self.state().book.bind_endpoint(port_id, endpoint_id) else {
            return;
        };
        let job = Job::Own {
            port_id: port_id.to_owned(),
            endpoint_id: endpoint_id.to_owned(),
            tags,
        };
        self.enqueue(Job::Mark {
            port_id: port_id.to_owned(),
            endpoint_id: endpoint_id.to_owned(),
        });
        let delay = self.config.owner_write_delay;
        if delay.is_zero() {
            self.enqueue(job);
            return;
        }
        // The job itself skips a container that is gone by then.
        let pools = Arc::downgrade(self);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if let Some(pools) = pools.upgrade() {
                pools.enqueue(job);
            }
        });
    }

    /// A port a container holds (found by a scan): held again, its owner written.
    pub(crate) fn hold_for_endpoint(self: &Arc<Self>, port: Port, key: PoolKey, endpoint: &str) {
        let id = port.id.clone();
        let tags = port.tags.clone();
        self.state().book.hold_found(port, key, endpoint);
        self.enqueue(Job::Own {
            port_id: id,
            endpoint_id: endpoint.to_owned(),
            tags,
        });
    }

    /// ProgramExternalConnectivity made an exposed-ports group for the endpoint's port.
    pub fn set_exposed(&self, endpoint_id: &str) {
        self.state().book.set_exposed(endpoint_id);
    }

    /// DeleteEndpoint removed the container's interface.
    pub fn unbind_endpoint(&self, port_id: &str) {
        self.state().book.unbind_endpoint(port_id);
    }

    /// A port the slow path took over (dual stack, a retried CreateEndpoint): the pools no
    /// longer track it, and releasing it follows the usual rules. An interface that waited
    /// plugged in loses its pool mark: a restarted daemon must not take it for a free port.
    pub async fn release_to_slow_path(&self, port_id: &str) {
        if self.forget_port(port_id) {
            if let Err(e) = self.unmark(port_id).await {
                tracing::warn!(port = %port_id, "clearing the pool mark of a port's interface: {}", e.report());
            }
        }
    }

    /// ReleaseAddress of a held port: back into its pool (or deleted when the pool is full),
    /// in the background. False when the pools do not hold this port.
    pub fn release(self: &Arc<Self>, port_id: &str) -> bool {
        let released = self.state().book.release(port_id);
        match released {
            Some(r) => {
                self.enqueue(Job::Recycle {
                    port: Box::new(r.port),
                    key: r.key,
                    owned: r.owned,
                    external: r.external,
                });
                true
            }
            None => false,
        }
    }

    /// A pool port of this host released through the usual path (the daemon restarted
    /// while a container held it): recycled in the background. False for other ports (the
    /// caller deletes them). A port the pools already have (a scan put it back, another
    /// container holds it now, a job deletes it) is theirs: a release that comes late, or is
    /// replayed after a restart, leaves it alone. Neutron is never told to delete a port
    /// the pools may hand out.
    pub fn recycle(self: &Arc<Self>, port: Port) -> bool {
        if port.binding_host_id != self.host || !port.tags.contains(&self.tag()) {
            return false;
        }
        let mut st = self.state();
        if st.book.knows(&port.id) {
            tracing::debug!(port = %port.id, "a release of a port the pools have already; nothing to do");
            return true;
        }
        let Some(key) = self.wanted_key_of(&port) else {
            // The pools' defaults are not known yet: the port goes, through the book, so
            // that no scan recovers it meanwhile.
            st.book.deleting(&port);
            drop(st);
            self.enqueue(Job::Delete { port_id: port.id });
            return true;
        };
        st.book.recycle_found(&port);
        drop(st);
        // Neutron tells what needs resetting.
        self.enqueue(Job::Recycle {
            port: Box::new(port),
            key,
            owned: false,
            // Unknown after a restart: its security groups tell (below).
            external: false,
        });
        true
    }

    /// Pools, for `kuryr pool list`.
    pub fn list(&self) -> Vec<PoolInfo> {
        let st = self.state();
        let mut keys: HashSet<PoolKey> = st.book.pool_keys().into_iter().collect();
        keys.extend(st.book.held().map(|h| h.key.clone()));
        keys.extend(st.filling.iter().cloned());
        let mut out: Vec<PoolInfo> = keys
            .into_iter()
            .map(|key| PoolInfo {
                host: self.host.clone(),
                free: st.book.free_count(&key),
                held: st.book.held().filter(|h| h.key == key).count(),
                target: st.demand.get(&key).map_or(0, |d| d.target),
                filling: st.filling.contains(&key),
                key,
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    pub fn counters(&self) -> PoolCounters {
        self.state().counters.clone()
    }

    /// Free ports of every pool of `network_id`.
    pub fn free_count(&self, network_id: &str) -> usize {
        let st = self.state();
        st.book
            .pool_keys()
            .iter()
            .filter(|k| k.network_id == network_id)
            .map(|k| st.book.free_count(k))
            .sum()
    }

    /// Put a free port in its pool, unless the pool is full or its network is going away:
    /// then the port is deleted (in the background). Returns whether it is in its pool.
    fn put_free(self: &Arc<Self>, key: PoolKey, port: Port) -> bool {
        let id = port.id.clone();
        let put = {
            let mut st = self.state();
            let refuse = st.closing.contains(&key.network_id)
                || st.book.free_count(&key) >= self.max_free(&st, &key);
            st.book.put_free(key, port, refuse)
        };
        match put {
            Put::Pooled | Put::AlreadyThere => true,
            Put::NotOurs => false,
            Put::Rejected => {
                self.enqueue(Job::Delete { port_id: id });
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_never_holds_more_than_a_quarter_of_its_subnet() {
        assert_eq!(subnet_cap("10.0.0.0/24"), 63);
        assert_eq!(subnet_cap("10.0.0.0/29"), 1);
        assert_eq!(subnet_cap("10.0.0.0/30"), 1);
        assert_eq!(subnet_cap("fd00::/64"), usize::MAX);
        assert_eq!(subnet_cap("not a cidr"), usize::MAX);
    }
}
