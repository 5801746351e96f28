//! The pools' memory of their ports: one map from port id to where the port stands
//! ([`Slot`]), changed only by the transitions below, so that a port is in exactly one place
//! (free in one pool, held by one container, or in one background job) and never handed out
//! twice. No IO: the callers do Neutron's and the host's part and tell the book.
//!
//! ```text
//!            put_free            take              release
//!   (new) ───────────▶ Free ─────────▶ Held ─────────────▶ Recycling ──put_free──▶ Free
//!     │                 │  ▲             ▲                     │
//!     │ enter           │  │ put_free    │ hold_found          │ (pool full, network closing)
//!     ▼                 │  │             │ (a scan: a          ▼
//!   Entering ───────────┼──┘             │  container has it) Deleting ──forget──▶ (gone)
//!                       └─ drain (close, give back, free) ─────▲
//! ```
//! A port no one can explain (a scan sees it, the book has no slot for it) is in doubt: it is
//! judged only when a second scan finds it unchanged ([`judge`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;

use kuryr_openstack::neutron::Port;

use super::{Held, PoolKey};

/// Where a port the pools know stands.
#[derive(Debug, Clone)]
pub(super) enum Slot {
    /// Waiting in its pool for a container.
    Free { key: PoolKey, port: Port },
    /// A container holds it, from RequestAddress until ReleaseAddress.
    Held(Held),
    /// Released: a job resets it and puts it back in its pool (or deletes it).
    Recycling,
    /// On its way into its pool, made by a fill or found free by a scan: its interface is
    /// readied first.
    Entering { key: PoolKey },
    /// A job deletes it.
    Deleting,
}

#[derive(Debug, Clone)]
struct Entry {
    slot: Slot,
    /// The port's network (closing a network waits for the jobs on it).
    network_id: String,
    /// Its interface waits plugged in ([`super::interfaces`]).
    plugged: bool,
    /// Its owner may be in Neutron (written by a job), so recycling resets it.
    owned: bool,
}

/// What became of a port offered to its pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Put {
    /// In the pool now.
    Pooled,
    /// Free or held already: left where it is.
    AlreadyThere,
    /// The pool is full or its network going away: to be deleted (now [`Slot::Deleting`]).
    Rejected,
    /// No longer the pools' (the usual path took it over, or a job deletes it): left alone.
    NotOurs,
}

/// What a released port needs: reset (if its owner may be in Neutron) and pooled again.
#[derive(Debug, Clone)]
pub(super) struct Released {
    pub port: Port,
    pub key: PoolKey,
    pub owned: bool,
    /// Its holder may have had published ports or a floating IP on it.
    pub external: bool,
}

#[derive(Debug, Default)]
pub(super) struct Book {
    ports: HashMap<String, Entry>,
    /// The free ports of each pool, oldest first: exactly the [`Slot::Free`] entries.
    queues: HashMap<PoolKey, VecDeque<String>>,
}

impl Book {
    /// Whether the book has the port (free, held or in a job).
    pub fn knows(&self, port_id: &str) -> bool {
        self.ports.contains_key(port_id)
    }

    pub fn slot(&self, port_id: &str) -> Option<&Slot> {
        self.ports.get(port_id).map(|e| &e.slot)
    }

    pub fn is_plugged(&self, port_id: &str) -> bool {
        self.ports.get(port_id).is_some_and(|e| e.plugged)
    }

    /// Whether the port's interface waits plugged in; for a port the book has.
    pub fn set_plugged(&mut self, port_id: &str, plugged: bool) {
        if let Some(e) = self.ports.get_mut(port_id) {
            e.plugged = plugged;
        }
    }

    /// The oldest free port of `key`'s pool, now held by a container.
    pub fn take(&mut self, key: &PoolKey) -> Option<Port> {
        let id = self.queues.get_mut(key)?.pop_front()?;
        let entry = self.ports.get_mut(&id)?;
        let Slot::Free { port, .. } = &entry.slot else {
            return None;
        };
        let port = port.clone();
        entry.slot = Slot::Held(Held {
            port: port.clone(),
            key: key.clone(),
            endpoint: None,
            exposed: false,
            external: false,
        });
        Some(port)
    }

    /// Offer a port on its way in (entering or recycling) to its pool: pooled unless
    /// `refuse` (the pool is full or its network is going away). A port already free or
    /// held stays where it is, and one the book let go of (taken over by the usual path,
    /// deleted) never comes back: a job that ends late must not pool a port someone else
    /// has, or one that is gone from Neutron.
    pub fn put_free(&mut self, key: PoolKey, port: Port, refuse: bool) -> Put {
        let Some(entry) = self.ports.get_mut(&port.id) else {
            return Put::NotOurs;
        };
        match entry.slot {
            Slot::Free { .. } | Slot::Held(_) => return Put::AlreadyThere,
            Slot::Deleting => return Put::NotOurs,
            Slot::Entering { .. } | Slot::Recycling => {}
        }
        if refuse {
            entry.slot = Slot::Deleting;
            return Put::Rejected;
        }
        let id = port.id.clone();
        entry.slot = Slot::Free {
            key: key.clone(),
            port,
        };
        entry.owned = false;
        self.queues.entry(key).or_default().push_back(id);
        Put::Pooled
    }

    /// A port a scan found a container holding (after a restart): held again.
    pub fn hold_found(&mut self, port: Port, key: PoolKey, endpoint: &str) {
        self.remove_from_queue(&port.id);
        let id = port.id.clone();
        let network_id = port.network_id.clone();
        let held = Held {
            port,
            key,
            endpoint: Some(endpoint.to_owned()),
            // Unknown after a restart: RevokeExternalConnectivity asks Neutron.
            exposed: true,
            external: false,
        };
        self.ports
            .entry(id)
            .and_modify(|e| e.slot = Slot::Held(held.clone()))
            .or_insert(Entry {
                slot: Slot::Held(held),
                network_id,
                plugged: false,
                owned: false,
            });
    }

    /// A port a fill made or a scan found free: on its way into its pool.
    pub fn enter(&mut self, port_id: &str, key: PoolKey) {
        self.remove_from_queue(port_id);
        self.ports.insert(
            port_id.to_owned(),
            Entry {
                network_id: key.network_id.clone(),
                slot: Slot::Entering { key },
                plugged: false,
                owned: false,
            },
        );
    }

    /// Ports on their way into `key`'s pool (a refill counts them as free).
    pub fn entering(&self, key: &PoolKey) -> usize {
        self.ports
            .values()
            .filter(|e| matches!(&e.slot, Slot::Entering { key: k } if k == key))
            .count()
    }

    /// CreateEndpoint made the container's interface: the endpoint has the port. Its tags,
    /// or None when no container holds it.
    pub fn bind_endpoint(&mut self, port_id: &str, endpoint_id: &str) -> Option<Vec<String>> {
        let held = self.held_mut(port_id)?;
        held.endpoint = Some(endpoint_id.to_owned());
        Some(held.port.tags.clone())
    }

    /// DeleteEndpoint removed the container's interface.
    pub fn unbind_endpoint(&mut self, port_id: &str) {
        if let Some(held) = self.held_mut(port_id) {
            held.endpoint = None;
        }
    }

    /// ProgramExternalConnectivity made an exposed-ports group for the endpoint's port.
    pub fn set_exposed(&mut self, endpoint_id: &str) {
        if let Some(Slot::Held(held)) = self
            .ports
            .values_mut()
            .map(|e| &mut e.slot)
            .find(|s| matches!(s, Slot::Held(h) if h.endpoint.as_deref() == Some(endpoint_id)))
        {
            held.exposed = true;
            held.external = true;
        }
    }

    /// A job writes the endpoint as the port's owner in Neutron: if the endpoint still holds
    /// it, it is owned from now on (recycling resets it). Returns whether it holds it.
    pub fn own(&mut self, port_id: &str, endpoint_id: &str) -> bool {
        if !self.held_by(port_id, endpoint_id) {
            return false;
        }
        if let Some(e) = self.ports.get_mut(port_id) {
            e.owned = true;
        }
        true
    }

    /// ReleaseAddress of a held port whose endpoint is gone: recycling it is a job's now.
    pub fn release(&mut self, port_id: &str) -> Option<Released> {
        let entry = self.ports.get_mut(port_id)?;
        let Slot::Held(held) = &entry.slot else {
            return None;
        };
        if held.endpoint.is_some() {
            return None;
        }
        let released = Released {
            port: held.port.clone(),
            key: held.key.clone(),
            owned: entry.owned,
            external: held.external,
        };
        entry.slot = Slot::Recycling;
        Some(released)
    }

    /// A pool port the book did not hold that is to be recycled (released through the usual
    /// path after a restart, or unexplained by two scans): a job resets what Neutron shows.
    pub fn recycle_found(&mut self, port: &Port) {
        self.remove_from_queue(&port.id);
        self.ports
            .entry(port.id.clone())
            .and_modify(|e| e.slot = Slot::Recycling)
            .or_insert(Entry {
                slot: Slot::Recycling,
                network_id: port.network_id.clone(),
                plugged: false,
                owned: false,
            });
    }

    /// A port a job deletes (a scan's port in doubt, a failed recycle).
    pub fn deleting(&mut self, port: &Port) {
        self.remove_from_queue(&port.id);
        self.ports
            .entry(port.id.clone())
            .and_modify(|e| e.slot = Slot::Deleting)
            .or_insert(Entry {
                slot: Slot::Deleting,
                network_id: port.network_id.clone(),
                plugged: false,
                owned: false,
            });
    }

    /// Ports of `network_id` a background job has (entering, recycling or deleting): a
    /// network is deleted once they are done, or Neutron refuses (the network in use).
    pub fn in_jobs_on(&self, network_id: &str) -> usize {
        self.ports
            .values()
            .filter(|e| {
                e.network_id == network_id
                    && matches!(
                        e.slot,
                        Slot::Entering { .. } | Slot::Recycling | Slot::Deleting
                    )
            })
            .count()
    }

    /// Take the free ports of the pools `which` selects out of them, to be deleted.
    pub fn drain_free(&mut self, mut which: impl FnMut(&PoolKey) -> bool) -> Vec<String> {
        let keys: Vec<PoolKey> = self.queues.keys().filter(|k| which(k)).cloned().collect();
        let mut ids = Vec::new();
        for key in keys {
            for id in self.queues.remove(&key).unwrap_or_default() {
                if let Some(e) = self.ports.get_mut(&id) {
                    e.slot = Slot::Deleting;
                }
                ids.push(id);
            }
        }
        ids
    }

    /// These ports, those of them that are free, out of their pools (now
    /// [`Slot::Deleting`]); returns them.
    pub fn drain_free_ids(&mut self, ids: &HashSet<&str>) -> Vec<String> {
        let mut drained = Vec::new();
        for queue in self.queues.values_mut() {
            queue.retain(|id| {
                let take = ids.contains(id.as_str());
                if take {
                    drained.push(id.clone());
                }
                !take
            });
        }
        for id in &drained {
            if let Some(e) = self.ports.get_mut(id) {
                e.slot = Slot::Deleting;
            }
        }
        drained
    }

    /// Free ports that were free before a listing and are not in it: deleted from under the
    /// daemon. They leave their pools (now [`Slot::Deleting`], for their interfaces).
    pub fn vanished(
        &mut self,
        free_before: &HashSet<String>,
        listed: &HashSet<&str>,
    ) -> Vec<String> {
        let gone: Vec<String> = self
            .free_ids()
            .into_iter()
            .filter(|id| free_before.contains(id) && !listed.contains(id.as_str()))
            .collect();
        for id in &gone {
            self.remove_from_queue(id);
            if let Some(e) = self.ports.get_mut(id) {
                e.slot = Slot::Deleting;
            }
        }
        gone
    }

    /// The port is gone, or the usual path took it over: the book forgets it. Returns
    /// whether its interface waited plugged in.
    pub fn forget(&mut self, port_id: &str) -> bool {
        self.remove_from_queue(port_id);
        self.ports.remove(port_id).is_some_and(|e| e.plugged)
    }

    pub fn free_ids(&self) -> HashSet<String> {
        self.queues.values().flatten().cloned().collect()
    }

    /// Free ports of `key`'s pool.
    pub fn free_count(&self, key: &PoolKey) -> usize {
        self.queues.get(key).map_or(0, VecDeque::len)
    }

    /// Pools with free ports or a queue (kept at their size by the pool loop).
    pub fn pool_keys(&self) -> Vec<PoolKey> {
        self.queues.keys().cloned().collect()
    }

    /// Remember a pool (without ports yet), so that the pool loop fills it.
    pub fn open_pool(&mut self, key: PoolKey) {
        self.queues.entry(key).or_default();
    }

    /// Forget a pool without free ports (given back for being idle).
    pub fn close_empty_pool(&mut self, key: &PoolKey) {
        if self.queues.get(key).is_some_and(VecDeque::is_empty) {
            self.queues.remove(key);
        }
    }

    pub fn held(&self) -> impl Iterator<Item = &Held> {
        self.ports.values().filter_map(|e| match &e.slot {
            Slot::Held(h) => Some(h),
            _ => None,
        })
    }

    pub fn held_by(&self, port_id: &str, endpoint_id: &str) -> bool {
        matches!(self.slot(port_id), Some(Slot::Held(h)) if h.endpoint.as_deref() == Some(endpoint_id))
    }

    pub fn held_by_address(&self, network_id: &str, ip: IpAddr) -> Option<&Held> {
        self.held()
            .find(|h| h.port.network_id == network_id && h.address() == Some(ip))
    }

    pub fn held_by_endpoint(&self, endpoint_id: &str) -> Option<&Held> {
        self.held()
            .find(|h| h.endpoint.as_deref() == Some(endpoint_id))
    }

    fn held_mut(&mut self, port_id: &str) -> Option<&mut Held> {
        match self.ports.get_mut(port_id).map(|e| &mut e.slot) {
            Some(Slot::Held(h)) => Some(h),
            _ => None,
        }
    }

    fn remove_from_queue(&mut self, port_id: &str) {
        if let Some(Slot::Free { key, .. }) = self.ports.get(port_id).map(|e| &e.slot) {
            if let Some(q) = self.queues.get_mut(key) {
                q.retain(|id| id != port_id);
            }
        }
    }
}

/// What a scan does with a pool port of this host the book has no slot for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Nothing now (a fill under way made it; a container holds it and all is written).
    Leave,
    /// Free: back into its pool.
    Recover,
    /// A container holds it and Neutron does not say so yet: held again, owner written.
    Hold { endpoint: String },
    /// Unexplained: seen with this revision, judged at the next scan.
    Doubt { revision: u64 },
    /// Seen twice unchanged and nobody holds it: reset and pooled again.
    Recycle,
    /// Seen twice unchanged, not this host's (or no pool takes it): deleted.
    Delete,
}

/// What the host and the previous scan say of a port (see [`judge`]).
#[derive(Debug, Clone, Default)]
pub(super) struct Seen<'a> {
    /// Bound to this host.
    pub ours: bool,
    /// Named and owned as a free pool port in Neutron (no `device_id`, no endpoint tags).
    pub free_in_neutron: bool,
    /// Its host interface says a container has it.
    pub with_interface: bool,
    /// Its interface is marked with an endpoint but home again: a container just came or went.
    pub settling: bool,
    /// The endpoint its interface names, if any.
    pub endpoint: Option<&'a str>,
    /// A fill is under way: its new ports are in Neutron before the book has them.
    pub creating: bool,
    /// The revision the previous scan saw the port in doubt with.
    pub doubted_at: Option<u64>,
    /// Whether it fits a pool as it is (one address).
    pub poolable: bool,
    /// Whether a pool with the default groups would take it (the defaults are known).
    pub wanted: bool,
}

/// The scan's verdict on a port the book does not have (see the module comment).
pub(super) fn judge(port: &Port, seen: &Seen<'_>) -> Verdict {
    let free = seen.free_in_neutron && seen.ours && !seen.with_interface && !seen.settling;
    if free && seen.creating {
        return Verdict::Leave;
    }
    if free && seen.poolable {
        return Verdict::Recover;
    }
    if seen.with_interface {
        return match seen.endpoint {
            Some(endpoint) if seen.wanted => Verdict::Hold {
                endpoint: endpoint.to_owned(),
            },
            _ => Verdict::Leave,
        };
    }
    if seen.doubted_at != Some(port.revision_number) {
        return Verdict::Doubt {
            revision: port.revision_number,
        };
    }
    if seen.ours && seen.wanted {
        Verdict::Recycle
    } else {
        Verdict::Delete
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(subnet: &str) -> PoolKey {
        PoolKey {
            network_id: "net".into(),
            subnet_id: subnet.into(),
            project_id: "project".into(),
            security_groups: vec!["default".into()],
        }
    }

    fn port(id: &str, ip: &str) -> Port {
        serde_json::from_value(serde_json::json!({
            "id": id,
            "network_id": "net",
            "fixed_ips": [{"subnet_id": "s1", "ip_address": ip}],
            "revision_number": 3,
        }))
        .unwrap()
    }

    /// A book with free ports `ids` in pool s1, in that order.
    fn book_with(ids: &[&str]) -> Book {
        let mut b = Book::default();
        for (i, id) in ids.iter().enumerate() {
            b.enter(id, key("s1"));
            assert_eq!(
                b.put_free(key("s1"), port(id, &format!("10.0.0.{}", i + 10)), false),
                Put::Pooled
            );
        }
        b
    }

    fn slot_name(b: &Book, id: &str) -> &'static str {
        match b.slot(id) {
            None => "gone",
            Some(Slot::Free { .. }) => "free",
            Some(Slot::Held(h)) if h.endpoint.is_some() => "held by an endpoint",
            Some(Slot::Held(_)) => "held",
            Some(Slot::Recycling) => "recycling",
            Some(Slot::Entering { .. }) => "entering",
            Some(Slot::Deleting) => "deleting",
        }
    }

    #[test]
    fn a_container_takes_the_oldest_free_port_once() {
        let mut b = book_with(&["a", "b"]);
        assert_eq!(b.take(&key("s1")).unwrap().id, "a");
        assert_eq!(b.take(&key("s1")).unwrap().id, "b");
        assert!(b.take(&key("s1")).is_none(), "never handed out twice");
        assert!(b.take(&key("other")).is_none());
        assert_eq!((slot_name(&b, "a"), slot_name(&b, "b")), ("held", "held"));
        assert_eq!(b.free_count(&key("s1")), 0);
    }

    /// A step of a table-driven test: its name, what it does, the port's slot after.
    type Step = (&'static str, Box<dyn Fn(&mut Book)>, &'static str);

    /// Every transition of one port, from a table: (step, its slot after).
    #[test]
    fn a_port_goes_round_its_life() {
        let mut b = book_with(&["a"]);
        let ip: IpAddr = "10.0.0.10".parse().unwrap();
        let steps: Vec<Step> = vec![
            (
                "take",
                Box::new(|b| assert!(b.take(&key("s1")).is_some())),
                "held",
            ),
            (
                "bind",
                Box::new(|b| assert!(b.bind_endpoint("a", "ep1").is_some())),
                "held by an endpoint",
            ),
            (
                "release refused while bound",
                Box::new(|b| assert!(b.release("a").is_none())),
                "held by an endpoint",
            ),
            (
                "owner written",
                Box::new(|b| assert!(b.own("a", "ep1"))),
                "held by an endpoint",
            ),
            (
                "another endpoint's owner job",
                Box::new(|b| assert!(!b.own("a", "ep2"))),
                "held by an endpoint",
            ),
            ("unbind", Box::new(|b| b.unbind_endpoint("a")), "held"),
            (
                "release",
                Box::new(|b| {
                    let r = b.release("a").unwrap();
                    assert!(r.owned, "its owner was written: recycling resets it");
                    assert_eq!(r.key, key("s1"));
                }),
                "recycling",
            ),
            (
                "a second release",
                Box::new(|b| assert!(b.release("a").is_none())),
                "recycling",
            ),
            (
                "pooled again",
                Box::new(|b| {
                    assert_eq!(
                        b.put_free(key("s1"), port("a", "10.0.0.10"), false),
                        Put::Pooled
                    )
                }),
                "free",
            ),
            (
                "taken again",
                Box::new(|b| assert!(b.take(&key("s1")).is_some())),
                "held",
            ),
            (
                "released unowned",
                Box::new(|b| assert!(!b.release("a").unwrap().owned)),
                "recycling",
            ),
            (
                "the pool is full",
                Box::new(|b| {
                    assert_eq!(
                        b.put_free(key("s1"), port("a", "10.0.0.10"), true),
                        Put::Rejected
                    )
                }),
                "deleting",
            ),
            (
                "deleted",
                Box::new(|b| {
                    b.forget("a");
                }),
                "gone",
            ),
        ];
        for (step, action, after) in steps {
            action(&mut b);
            assert_eq!(slot_name(&b, "a"), after, "after {step}");
            let free = b.free_ids().contains("a");
            assert_eq!(free, after == "free", "queue and slot agree after {step}");
            let by_ip = b.held_by_address("net", ip).is_some();
            assert_eq!(by_ip, after.starts_with("held"), "after {step}");
        }
    }

    #[test]
    fn a_port_free_or_held_is_never_pooled_twice() {
        let mut b = book_with(&["a"]);
        assert_eq!(
            b.put_free(key("s1"), port("a", "10.0.0.10"), false),
            Put::AlreadyThere
        );
        assert_eq!(b.free_count(&key("s1")), 1);
        b.take(&key("s1"));
        assert_eq!(
            b.put_free(key("s1"), port("a", "10.0.0.10"), false),
            Put::AlreadyThere
        );
        assert_eq!(slot_name(&b, "a"), "held");
        assert_eq!(b.free_count(&key("s1")), 0);
    }

    /// A job that ends after the port left the pools (the usual path took it over after a
    /// restart, or it is being deleted) does not bring it back: it would be handed to a
    /// container while someone else has it, or after it is gone from Neutron.
    #[test]
    fn a_port_the_book_let_go_of_is_never_pooled_again() {
        let mut b = Book::default();
        b.enter("r", key("s1"));
        assert!(!b.forget("r"));
        assert_eq!(
            b.put_free(key("s1"), port("r", "10.0.0.20"), false),
            Put::NotOurs
        );
        assert_eq!(slot_name(&b, "r"), "gone");
        let mut b = book_with(&["a"]);
        b.drain_free(|_| true);
        assert_eq!(
            b.put_free(key("s1"), port("a", "10.0.0.10"), false),
            Put::NotOurs
        );
        assert_eq!(slot_name(&b, "a"), "deleting");
        assert!(b.take(&key("s1")).is_none());
    }

    #[test]
    fn closing_a_network_drains_its_free_ports_only() {
        let mut b = book_with(&["a", "b", "c"]);
        b.take(&key("s1"));
        b.enter("d", key("s2"));
        b.put_free(key("s2"), port("d", "10.0.1.10"), false);
        let drained = b.drain_free(|k| k.subnet_id == "s1");
        assert_eq!(drained, vec!["b".to_string(), "c".to_string()]);
        assert_eq!(
            ["a", "b", "c", "d"].map(|id| slot_name(&b, id)),
            ["held", "deleting", "deleting", "free"]
        );
        assert!(b.knows("b"), "known until the job forgets it");
        assert!(b.take(&key("s1")).is_none());
    }

    #[test]
    fn a_scan_recovers_holds_and_notices_what_vanished() {
        let mut b = book_with(&["a", "b"]);
        // A restart: found free ones count toward their pool until pooled.
        b.enter("r1", key("s1"));
        b.enter("r2", key("s1"));
        assert_eq!(b.entering(&key("s1")), 2);
        b.set_plugged("r1", true);
        assert_eq!(
            b.put_free(key("s1"), port("r1", "10.0.0.20"), false),
            Put::Pooled
        );
        assert_eq!(b.entering(&key("s1")), 1);
        assert!(b.is_plugged("r1"), "readied on its way in");
        // One a container holds.
        b.hold_found(port("h", "10.0.0.30"), key("s1"), "ep9");
        assert!(b.held_by_endpoint("ep9").is_some_and(|h| h.exposed));
        assert_eq!(slot_name(&b, "h"), "held by an endpoint");
        // Someone deleted "b" in Neutron while it was free.
        let before = b.free_ids();
        let listed: HashSet<&str> = ["a", "r1", "h"].into_iter().collect();
        assert_eq!(b.vanished(&before, &listed), vec!["b".to_string()]);
        assert_eq!(slot_name(&b, "b"), "deleting");
        assert_eq!(b.free_count(&key("s1")), 2, "a and r1");
        // The usual path released a pool port after a restart.
        b.recycle_found(&port("u", "10.0.0.50"));
        assert_eq!(slot_name(&b, "u"), "recycling");
        assert!(b.release("u").is_none(), "a job has it");
        // b (deleting), r2 (entering) and u (recycling) are in jobs.
        assert_eq!(b.in_jobs_on("net"), 3);
        assert_eq!(b.in_jobs_on("another"), 0);
    }

    #[test]
    fn plugged_marks_follow_the_port_and_go_with_it() {
        let mut b = book_with(&["a"]);
        b.set_plugged("a", true);
        b.take(&key("s1"));
        assert!(b.is_plugged("a"), "a taken port keeps its interface");
        b.set_plugged("unknown", true);
        assert!(!b.is_plugged("unknown"), "only ports the book has");
        assert!(b.forget("a"), "forgetting says it waited plugged in");
        assert!(!b.is_plugged("a"));
    }

    fn neutron_port(revision: u64) -> Port {
        Port {
            revision_number: revision,
            ..port("p", "10.0.0.40")
        }
    }

    /// A scan's verdicts, from a table of what Neutron and the host show.
    #[test]
    fn a_scan_judges_unknown_ports_by_neutron_and_the_host() {
        let base = Seen {
            ours: true,
            poolable: true,
            wanted: true,
            ..Seen::default()
        };
        let free = Seen {
            free_in_neutron: true,
            ..base.clone()
        };
        let cases: Vec<(&str, Seen<'_>, u64, Verdict)> = vec![
            (
                "free in Neutron, no container",
                free.clone(),
                3,
                Verdict::Recover,
            ),
            (
                "free, a fill under way",
                Seen {
                    creating: true,
                    ..free.clone()
                },
                3,
                Verdict::Leave,
            ),
            (
                "free in Neutron, a container's interface",
                Seen {
                    with_interface: true,
                    endpoint: Some("ep"),
                    ..free.clone()
                },
                3,
                Verdict::Hold {
                    endpoint: "ep".into(),
                },
            ),
            (
                "a container's, unmarked",
                Seen {
                    with_interface: true,
                    ..base.clone()
                },
                3,
                Verdict::Leave,
            ),
            (
                "settling",
                Seen {
                    settling: true,
                    ..free.clone()
                },
                3,
                Verdict::Doubt { revision: 3 },
            ),
            (
                "owned, no interface, first look",
                base.clone(),
                3,
                Verdict::Doubt { revision: 3 },
            ),
            (
                "owned, no interface, changed since",
                Seen {
                    doubted_at: Some(2),
                    ..base.clone()
                },
                3,
                Verdict::Doubt { revision: 3 },
            ),
            (
                "owned, no interface, unchanged",
                Seen {
                    doubted_at: Some(3),
                    ..base.clone()
                },
                3,
                Verdict::Recycle,
            ),
            (
                "another host's, unchanged",
                Seen {
                    ours: false,
                    doubted_at: Some(3),
                    ..base.clone()
                },
                3,
                Verdict::Delete,
            ),
            (
                "free but not poolable, unchanged",
                Seen {
                    poolable: false,
                    wanted: false,
                    doubted_at: Some(3),
                    ..free.clone()
                },
                3,
                Verdict::Delete,
            ),
            (
                "a container's, defaults unknown",
                Seen {
                    with_interface: true,
                    endpoint: Some("ep"),
                    wanted: false,
                    ..base.clone()
                },
                3,
                Verdict::Leave,
            ),
        ];
        for (case, seen, revision, expected) in cases {
            assert_eq!(judge(&neutron_port(revision), &seen), expected, "{case}");
        }
    }
}
