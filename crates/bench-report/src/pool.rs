//! `kuryr pool list --json`: free ports per network and the pools' counters; a phase's pool
//! work is the difference of the dumps taken before and after it.

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
pub struct PoolList {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub pools: Vec<Pool>,
    #[serde(default)]
    pub counters: Counters,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Pool {
    #[serde(default)]
    pub network_id: String,
    #[serde(default)]
    pub free: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Counters {
    #[serde(default)]
    pub hits: u64,
    #[serde(default)]
    pub misses: u64,
    #[serde(default)]
    pub created: u64,
    #[serde(default)]
    pub recycled: u64,
}

impl PoolList {
    /// The free ports of Neutron network `network_id` over all its pools.
    pub fn free(&self, network_id: &str) -> u64 {
        self.pools
            .iter()
            .filter(|p| p.network_id == network_id)
            .map(|p| p.free)
            .sum()
    }
}

impl Counters {
    /// What happened between `self` (before) and `after`; a counter that went down (the
    /// daemon restarted) counts from 0.
    pub fn delta(&self, after: &Counters) -> Counters {
        let d = |a: u64, b: u64| if b >= a { b - a } else { b };
        Counters {
            hits: d(self.hits, after.hits),
            misses: d(self.misses, after.misses),
            created: d(self.created, after.created),
            recycled: d(self.recycled, after.recycled),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_and_counter_deltas() {
        let before: PoolList = serde_json::from_str(
            r#"{"enabled": true, "pools": [
                {"network_id": "n1", "subnet_id": "s1", "free": 4, "held": 0},
                {"network_id": "n1", "subnet_id": "s2", "free": 2, "held": 1},
                {"network_id": "n2", "subnet_id": "s3", "free": 9, "held": 0}],
              "counters": {"hits": 3, "misses": 1, "created": 10, "recycled": 2, "deleted": 0}}"#,
        )
        .unwrap();
        assert_eq!(before.free("n1"), 6);
        assert_eq!(before.free("n3"), 0);
        let after = Counters {
            hits: 33,
            misses: 1,
            created: 10,
            recycled: 32,
        };
        assert_eq!(
            before.counters.delta(&after),
            Counters {
                hits: 30,
                misses: 0,
                created: 0,
                recycled: 30
            }
        );
        let off: PoolList =
            serde_json::from_str(r#"{"enabled": false, "pools": [], "counters": {}}"#).unwrap();
        assert!(!off.enabled);
    }
}
