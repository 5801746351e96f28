//! What the driver remembers between calls so that a container start asks Neutron nothing
//! it already asked: the subnet behind a PoolID, the Neutron network of a Docker network, a
//! network's subnets. Only immutable links are kept for long; networks and subnets (whose
//! gateway, routes or MTU an operator may change) are read again in the background, those
//! used since the last time ([`Cache::take_used`]), so an idle network costs Neutron nothing.
//! Entries go when kuryr deletes what they describe. Neutron remains the source of truth:
//! a restarted daemon starts empty and asks again.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use kuryr_openstack::neutron::{Network, Router, Subnet, SubnetPool};

use crate::lookup::same_cidr;
use crate::options::Named;

#[derive(Debug, Default)]
pub(crate) struct Cache {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// PoolID → the subnet made from it.
    pool_subnets: HashMap<String, Subnet>,
    /// Docker network id → Neutron network.
    networks: HashMap<String, Network>,
    /// Neutron network id → its subnets.
    subnets: HashMap<String, Vec<Subnet>>,
    /// Neutron networks whose entries were read since the last refresh.
    used: HashSet<String>,
    /// Subnetpools this daemon made for a CIDR, by id: until a subnet is made from one,
    /// its gateway is answered without asking Neutron, and CreateNetwork finds it here.
    new_pools: HashMap<String, SubnetPool>,
    /// Subnetpools RequestPool answered with, by id (ReleasePool and DeleteNetwork need no
    /// lookup then).
    pools: HashMap<String, SubnetPool>,
    /// Docker networks this daemon was asked to create.
    create_attempts: HashSet<String>,
    /// Routers by how kuryr.conf or a network option names them.
    routers: HashMap<Named, Router>,
}

impl Cache {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn router(&self, named: &Named) -> Option<Router> {
        self.inner().routers.get(named).cloned()
    }

    pub fn set_router(&self, named: &Named, router: &Router) {
        self.inner().routers.insert(named.clone(), router.clone());
    }

    pub fn forget_router(&self, router_id: &str) {
        self.inner().routers.retain(|_, r| r.id != router_id);
    }

    pub fn pool_subnet(&self, pool_id: &str) -> Option<Subnet> {
        self.inner().pool_subnets.get(pool_id).cloned()
    }

    pub fn set_pool_subnet(&self, pool_id: &str, subnet: &Subnet) {
        self.inner()
            .pool_subnets
            .insert(pool_id.to_owned(), subnet.clone());
    }

    pub fn network(&self, docker_id: &str) -> Option<Network> {
        let mut inner = self.inner();
        let network = inner.networks.get(docker_id).cloned()?;
        inner.used.insert(network.id.clone());
        Some(network)
    }

    pub fn set_network(&self, docker_id: &str, network: &Network) {
        self.inner()
            .networks
            .insert(docker_id.to_owned(), network.clone());
    }

    pub fn subnets(&self, network_id: &str) -> Option<Vec<Subnet>> {
        let mut inner = self.inner();
        let subnets = inner.subnets.get(network_id).cloned()?;
        inner.used.insert(network_id.to_owned());
        Some(subnets)
    }

    pub fn set_subnets(&self, network_id: &str, subnets: &[Subnet]) {
        self.inner()
            .subnets
            .insert(network_id.to_owned(), subnets.to_vec());
    }

    pub fn forget_subnetpool(&self, pool_id: &str) {
        let mut inner = self.inner();
        inner.pool_subnets.remove(pool_id);
        inner.new_pools.remove(pool_id);
        inner.pools.remove(pool_id);
    }

    pub fn set_pool(&self, pool: &SubnetPool) {
        self.inner().pools.insert(pool.id.clone(), pool.clone());
    }

    pub fn pool(&self, pool_id: &str) -> Option<SubnetPool> {
        self.inner().pools.get(pool_id).cloned()
    }

    /// A subnetpool this daemon just made, which no subnet uses yet.
    pub fn set_new_pool(&self, pool: &SubnetPool) {
        self.inner().new_pools.insert(pool.id.clone(), pool.clone());
    }

    pub fn new_pool(&self, pool_id: &str) -> Option<SubnetPool> {
        self.inner().new_pools.get(pool_id).cloned()
    }

    /// The new pool with exactly this prefix and no subnet tag, if any.
    pub fn new_pool_of(&self, cidr: &str) -> Option<SubnetPool> {
        self.inner()
            .new_pools
            .values()
            .find(|p| p.prefixes.len() == 1 && same_cidr(&p.prefixes[0], cidr) && p.tags.is_empty())
            .cloned()
    }

    /// A subnet was made from the pool: it is no longer new.
    pub fn pool_used(&self, pool_id: &str) {
        self.inner().new_pools.remove(pool_id);
    }

    /// Whether this is the first CreateNetwork of a Docker network this daemon sees.
    pub fn first_create_attempt(&self, docker_id: &str) -> bool {
        self.inner().create_attempts.insert(docker_id.to_owned())
    }

    /// A Docker network is being deleted: everything about it goes.
    pub fn forget_network(&self, docker_id: &str, network_id: &str) {
        let mut inner = self.inner();
        inner.create_attempts.remove(docker_id);
        inner.networks.remove(docker_id);
        inner.subnets.remove(network_id);
        inner.pool_subnets.retain(|_, s| s.network_id != network_id);
    }

    /// What was used since the last call: the cached networks among them (Docker id,
    /// Neutron id), and the network ids whose subnets are cached.
    pub fn take_used(&self) -> (Vec<(String, String)>, Vec<String>) {
        let mut inner = self.inner();
        let used = std::mem::take(&mut inner.used);
        let networks = inner
            .networks
            .iter()
            .filter(|(_, n)| used.contains(&n.id))
            .map(|(d, n)| (d.clone(), n.id.clone()))
            .collect();
        let subnets = inner
            .subnets
            .keys()
            .filter(|id| used.contains(*id))
            .cloned()
            .collect();
        (networks, subnets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_was_used_is_read_again() {
        let cache = Cache::default();
        let network = |id: &str| Network {
            id: id.into(),
            ..Default::default()
        };
        cache.set_network("d1", &network("n1"));
        cache.set_network("d2", &network("n2"));
        cache.set_subnets("n1", &[]);
        cache.set_subnets("n2", &[]);
        assert_eq!(cache.take_used(), (vec![], vec![]));
        cache.network("d1");
        cache.subnets("n1");
        assert_eq!(
            cache.take_used(),
            (vec![("d1".into(), "n1".into())], vec!["n1".into()])
        );
        assert_eq!(cache.take_used(), (vec![], vec![]));
    }

    #[test]
    fn a_new_pool_is_new_until_a_subnet_is_made_from_it() {
        let cache = Cache::default();
        let pool = SubnetPool {
            id: "p1".into(),
            prefixes: vec!["fd00:0::/64".into()],
            ..Default::default()
        };
        cache.set_new_pool(&pool);
        assert_eq!(cache.new_pool("p1").unwrap().id, "p1");
        assert_eq!(cache.new_pool_of("fd00::/64").unwrap().id, "p1");
        assert!(cache.new_pool_of("fd01::/64").is_none());
        cache.pool_used("p1");
        assert!(cache.new_pool("p1").is_none());
        assert!(cache.new_pool_of("fd00::/64").is_none());
    }

    #[test]
    fn only_the_first_create_of_a_network_counts_as_first() {
        let cache = Cache::default();
        assert!(cache.first_create_attempt("d1"));
        assert!(!cache.first_create_attempt("d1"));
        cache.forget_network("d1", "n1");
        assert!(cache.first_create_attempt("d1"));
    }
}
