//! What this daemon made or bound on the usual (unpooled) path, so that the later calls of
//! the same container ask Neutron only what changes: RequestAddress remembers the port it
//! made, CreateEndpoint binds that port without looking it up, EndpointOperInfo, Join and
//! the external-connectivity calls answer from here, DeleteEndpoint unplugs it and
//! ReleaseAddress deletes it by id.
//!
//! Neutron stays the source of truth. A restarted daemon starts empty and every call then
//! looks its port up as before; a write to a remembered port that Neutron answers with "not
//! found" forgets it and takes the lookup path. One map from port id to entry: every
//! question is answered from that map alone, so there are no indices to keep in step.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

use kuryr_openstack::neutron::Port;

/// One remembered port.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The port as Neutron last answered for it (tags included).
    pub port: Port,
    /// The endpoint CreateEndpoint bound it for, until DeleteEndpoint.
    pub endpoint: Option<String>,
    /// Whether ProgramExternalConnectivity may have given the port an exposed-ports group.
    pub exposed: bool,
    /// Deleted in Neutron by ReleaseAddress: kept only to answer the release of its other
    /// addresses (a dual-stack port goes at the first) without asking Neutron.
    pub deleted: bool,
}

impl Entry {
    fn holds(&self, network_id: &str, ip: IpAddr) -> bool {
        self.port.network_id == network_id
            && self
                .port
                .fixed_ips
                .iter()
                .any(|f| f.ip_address.parse::<IpAddr>().ok() == Some(ip))
    }
}

#[derive(Debug, Default)]
pub(crate) struct Ledger {
    ports: Mutex<HashMap<String, Entry>>,
}

impl Ledger {
    fn ports(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.ports.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remember a port as Neutron just answered for it, keeping what is known of its
    /// endpoint.
    pub fn remember(&self, port: &Port) {
        let mut ports = self.ports();
        match ports.get_mut(&port.id) {
            Some(entry) => {
                entry.port = port.clone();
                entry.deleted = false;
            }
            None => {
                ports.insert(
                    port.id.clone(),
                    Entry {
                        port: port.clone(),
                        endpoint: None,
                        exposed: false,
                        deleted: false,
                    },
                );
            }
        }
    }

    /// The port holding `ip` on a network (a live one first).
    pub fn by_address(&self, network_id: &str, ip: IpAddr) -> Option<Entry> {
        let ports = self.ports();
        let mut holding = ports.values().filter(|e| e.holds(network_id, ip));
        let first = holding.next()?;
        if !first.deleted {
            return Some(first.clone());
        }
        Some(holding.find(|e| !e.deleted).unwrap_or(first).clone())
    }

    /// A live port of a network with this MAC.
    pub fn by_mac(&self, network_id: &str, mac: &str) -> Option<Entry> {
        self.ports()
            .values()
            .find(|e| {
                !e.deleted
                    && e.port.network_id == network_id
                    && e.port.mac_address.eq_ignore_ascii_case(mac)
            })
            .cloned()
    }

    /// The port an endpoint is bound to.
    pub fn by_endpoint(&self, endpoint: &str) -> Option<Entry> {
        self.ports()
            .values()
            .find(|e| !e.deleted && e.endpoint.as_deref() == Some(endpoint))
            .cloned()
    }

    /// CreateEndpoint bound `port` for `endpoint`.
    pub fn bind(&self, port: &Port, endpoint: &str) {
        self.remember(port);
        if let Some(entry) = self.ports().get_mut(&port.id) {
            entry.endpoint = Some(endpoint.to_owned());
            entry.exposed = false;
        }
    }

    /// ProgramExternalConnectivity is about to give the endpoint's port a group.
    pub fn set_exposed(&self, endpoint: &str) {
        if let Some(entry) = self
            .ports()
            .values_mut()
            .find(|e| e.endpoint.as_deref() == Some(endpoint))
        {
            entry.exposed = true;
        }
    }

    /// DeleteEndpoint is done with the endpoint's port; `port` is what Neutron now has.
    pub fn unbind(&self, port: &Port) {
        self.remember(port);
        if let Some(entry) = self.ports().get_mut(&port.id) {
            entry.endpoint = None;
            entry.exposed = false;
        }
    }

    /// ReleaseAddress of `ip` deleted the port or answered from a deleted one: the entry
    /// stays only while another of its addresses may still be released.
    pub fn released(&self, port_id: &str, ip: IpAddr) {
        let mut ports = self.ports();
        let Some(entry) = ports.get_mut(port_id) else {
            return;
        };
        entry.deleted = true;
        entry
            .port
            .fixed_ips
            .retain(|f| f.ip_address.parse::<IpAddr>().ok() != Some(ip));
        if entry.port.fixed_ips.is_empty() {
            ports.remove(port_id);
        }
    }

    /// The port is no longer this path's (given back, deleted elsewhere, or gone).
    pub fn forget(&self, port_id: &str) {
        self.ports().remove(port_id);
    }

    /// A network is deleted: its ports go with it.
    pub fn forget_network(&self, network_id: &str) {
        self.ports().retain(|_, e| e.port.network_id != network_id);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.ports().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kuryr_openstack::neutron::FixedIp;

    fn port(id: &str, network: &str, mac: &str, ips: &[&str]) -> Port {
        Port {
            id: id.into(),
            network_id: network.into(),
            mac_address: mac.into(),
            fixed_ips: ips
                .iter()
                .map(|ip| FixedIp {
                    subnet_id: format!("subnet-{ip}"),
                    ip_address: (*ip).into(),
                })
                .collect(),
            ..Default::default()
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_container_from_address_to_release() {
        let ledger = Ledger::default();
        let p = port("p1", "n1", "fa:16:3e:00:00:01", &["10.0.0.5"]);
        ledger.remember(&p);
        assert_eq!(
            ledger.by_address("n1", ip("10.0.0.5")).unwrap().port.id,
            "p1"
        );
        assert!(ledger.by_address("n2", ip("10.0.0.5")).is_none());
        assert!(ledger.by_endpoint("ep").is_none());

        ledger.bind(&p, "ep");
        ledger.set_exposed("ep");
        let bound = ledger.by_endpoint("ep").unwrap();
        assert!(bound.exposed);
        assert_eq!(bound.port.id, "p1");

        ledger.unbind(&p);
        assert!(ledger.by_endpoint("ep").is_none());
        let entry = ledger.by_address("n1", ip("10.0.0.5")).unwrap();
        assert!(entry.endpoint.is_none() && !entry.exposed && !entry.deleted);

        ledger.released("p1", ip("10.0.0.5"));
        assert!(ledger.by_address("n1", ip("10.0.0.5")).is_none());
        assert_eq!(ledger.len(), 0);
    }

    #[test]
    fn a_dual_stack_port_answers_its_second_release_once_deleted() {
        let ledger = Ledger::default();
        let p = port("p1", "n1", "fa:16:3e:00:00:01", &["10.0.0.5", "fd00::5"]);
        ledger.remember(&p);
        assert_eq!(
            ledger.by_mac("n1", "FA:16:3E:00:00:01").unwrap().port.id,
            "p1"
        );
        ledger.released("p1", ip("10.0.0.5"));
        let rest = ledger.by_address("n1", ip("fd00::5")).unwrap();
        assert!(rest.deleted);
        assert!(ledger.by_mac("n1", "fa:16:3e:00:00:01").is_none());
        ledger.released("p1", ip("fd00::5"));
        assert_eq!(ledger.len(), 0);
    }

    #[test]
    fn a_live_port_comes_before_a_deleted_one_with_the_same_address() {
        let ledger = Ledger::default();
        ledger.remember(&port(
            "old",
            "n1",
            "fa:16:3e:00:00:01",
            &["10.0.0.5", "fd00::5"],
        ));
        ledger.released("old", ip("fd00::5"));
        // Neutron handed the IPv6 address to a new port meanwhile.
        ledger.remember(&port("new", "n1", "fa:16:3e:00:00:02", &["fd00::5"]));
        ledger.remember(&port("other", "n1", "fa:16:3e:00:00:03", &["10.0.0.5"]));
        assert_eq!(
            ledger.by_address("n1", ip("10.0.0.5")).unwrap().port.id,
            "other"
        );
        assert_eq!(
            ledger.by_address("n1", ip("fd00::5")).unwrap().port.id,
            "new"
        );
    }

    #[test]
    fn a_deleted_network_takes_its_ports() {
        let ledger = Ledger::default();
        ledger.remember(&port("p1", "n1", "fa:16:3e:00:00:01", &["10.0.0.5"]));
        ledger.remember(&port("p2", "n2", "fa:16:3e:00:00:02", &["10.0.0.5"]));
        ledger.forget_network("n1");
        assert!(ledger.by_address("n1", ip("10.0.0.5")).is_none());
        assert_eq!(
            ledger.by_address("n2", ip("10.0.0.5")).unwrap().port.id,
            "p2"
        );
        ledger.forget("p2");
        assert_eq!(ledger.len(), 0);
    }
}
