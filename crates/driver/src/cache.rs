//! What the pooled path remembers between calls so that a container start asks Neutron
//! nothing it already asked: the subnet behind a PoolID, the Neutron network of a Docker
//! network, a network's subnets. Only immutable links are kept for long; networks and
//! subnets (whose gateway or routes an operator may change) are read again in the background
//! at every pool scan.
//! Entries go when kuryr deletes what they describe. Neutron remains the source of truth:
//! a restarted daemon starts empty and asks again.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use kuryr_openstack::neutron::{Network, Subnet};

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
}

impl Cache {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
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
        self.inner().networks.get(docker_id).cloned()
    }

    pub fn set_network(&self, docker_id: &str, network: &Network) {
        self.inner()
            .networks
            .insert(docker_id.to_owned(), network.clone());
    }

    pub fn subnets(&self, network_id: &str) -> Option<Vec<Subnet>> {
        self.inner().subnets.get(network_id).cloned()
    }

    pub fn set_subnets(&self, network_id: &str, subnets: &[Subnet]) {
        self.inner()
            .subnets
            .insert(network_id.to_owned(), subnets.to_vec());
    }

    pub fn forget_subnetpool(&self, pool_id: &str) {
        self.inner().pool_subnets.remove(pool_id);
    }

    /// A Docker network is being deleted: everything about it goes.
    pub fn forget_network(&self, docker_id: &str, network_id: &str) {
        let mut inner = self.inner();
        inner.networks.remove(docker_id);
        inner.subnets.remove(network_id);
        inner.pool_subnets.retain(|_, s| s.network_id != network_id);
    }

    /// The cached networks: (Docker id, Neutron id).
    pub fn networks(&self) -> Vec<(String, String)> {
        self.inner()
            .networks
            .iter()
            .map(|(d, n)| (d.clone(), n.id.clone()))
            .collect()
    }

    /// Network ids whose subnets are cached.
    pub fn subnet_networks(&self) -> Vec<String> {
        self.inner().subnets.keys().cloned().collect()
    }
}
