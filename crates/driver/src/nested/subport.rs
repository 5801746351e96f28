//! `vlan` mode: the container's port becomes a subport of the VM port's trunk, on a VLAN id
//! no other subport of that trunk has. Neutron holds the only record of the ids in use, so
//! two daemons (or one restarted) never hand out the same one: the id is picked at random
//! among the free ones Neutron lists, and a collision (Neutron's `DuplicateSubPort`) is
//! retried with a fresh look.

use std::collections::BTreeSet;
use std::hash::{BuildHasher, Hasher};

use kuryr_openstack::neutron::{Port, Subport, TrunkDetails};

use super::VmPort;
use crate::error::{DriverError, Result};
use crate::Driver;

/// How many ids are tried when other daemons keep taking them first.
const ATTEMPTS: usize = 5;
/// The VLAN ids a trunk subport can have (802.1Q; 0 and 4095 are reserved).
const VLAN_IDS: std::ops::RangeInclusive<u16> = 1..=4094;

impl Driver {
    /// Attach `port` to the VM port's trunk; returns its VLAN id. A port already on the trunk
    /// (a retried CreateEndpoint) keeps its id.
    pub(super) async fn attach_subport(&self, vm: &VmPort, port: &Port) -> Result<u16> {
        let mut last = None;
        for _ in 0..ATTEMPTS {
            let trunk = self.trunk_of(vm).await?;
            if let Some(existing) = trunk.sub_ports.iter().find(|s| s.port_id == port.id) {
                return vlan_id(existing);
            }
            let used: BTreeSet<u32> = trunk.sub_ports.iter().map(|s| s.segmentation_id).collect();
            let id = pick_free(&used, random()).ok_or_else(|| {
                DriverError::conflict(format!(
                    "trunk {} has no free VLAN id left (4094 subports); remove unused \
                     subports or give this VM another trunk",
                    trunk.trunk_id
                ))
            })?;
            let subport = Subport {
                port_id: port.id.clone(),
                segmentation_type: "vlan".into(),
                segmentation_id: u32::from(id),
                mac_address: None,
            };
            match self.neutron.add_subports(&trunk.trunk_id, &[subport]).await {
                Ok(_) => {
                    tracing::info!(port = %port.id, trunk = %trunk.trunk_id, vlan = id, "attached subport");
                    return Ok(id);
                }
                // Another daemon took the id (or attached this port) meanwhile: look again.
                Err(e) if e.kind() == Some("DuplicateSubPort") => last = Some(e),
                Err(e) => {
                    return Err(DriverError::neutron(
                        format!(
                            "adding port {} to trunk {} as a subport with VLAN {id}",
                            port.id, trunk.trunk_id
                        ),
                        &e,
                    ))
                }
            }
        }
        Err(match last {
            Some(e) => DriverError::neutron(
                format!(
                    "adding port {} to the VM's trunk: the VLAN ids kuryr picked were taken \
                     {ATTEMPTS} times in a row by others; retry",
                    port.id
                ),
                &e,
            ),
            None => DriverError::bug("no attempt was made to add the subport"),
        })
    }

    /// Remove `port_id` from the VM port's trunk; a port that is not on it is fine.
    pub(super) async fn detach_subport(&self, vm: &VmPort, port_id: &str) -> Result<()> {
        let port = self.vm_port_now(vm).await?;
        let Some(trunk) = port.trunk_details.filter(|t| !t.trunk_id.is_empty()) else {
            return Ok(());
        };
        if !trunk.sub_ports.iter().any(|s| s.port_id == port_id) {
            return Ok(());
        }
        let subport = Subport {
            port_id: port_id.to_owned(),
            ..Default::default()
        };
        match self
            .neutron
            .remove_subports(&trunk.trunk_id, &[subport])
            .await
        {
            Ok(_) => {
                tracing::info!(port = %port_id, trunk = %trunk.trunk_id, "detached subport");
                Ok(())
            }
            // Removed by someone else meanwhile.
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(DriverError::neutron(
                format!("removing subport {port_id} from trunk {}", trunk.trunk_id),
                &e,
            )),
        }
    }

    /// The trunk the VM's port is the parent of, with its subports as Neutron has them now.
    async fn trunk_of(&self, vm: &VmPort) -> Result<TrunkDetails> {
        let port = self.vm_port_now(vm).await?;
        port.trunk_details
            .filter(|t| !t.trunk_id.is_empty())
            .ok_or_else(|| {
                DriverError::conflict(format!(
                    "the VM's port {} is not the parent of a trunk, which vlan mode needs: \
                     create one with it as parent (openstack network trunk create \
                     --parent-port {} <name>), or use default_port_driver = nested",
                    vm.id, vm.id
                ))
            })
    }
}

fn vlan_id(subport: &Subport) -> Result<u16> {
    u16::try_from(subport.segmentation_id)
        .ok()
        .filter(|id| VLAN_IDS.contains(id))
        .ok_or_else(|| {
            DriverError::conflict(format!(
                "port {} is on the VM's trunk with segmentation {} {}, which is no VLAN id; \
                 remove it from the trunk",
                subport.port_id, subport.segmentation_type, subport.segmentation_id
            ))
        })
}

/// The `n`-th free VLAN id (modulo how many are free), or `None` when all are used.
fn pick_free(used: &BTreeSet<u32>, n: u64) -> Option<u16> {
    let free = VLAN_IDS.filter(|id| !used.contains(&u32::from(*id)));
    let count = free.clone().count();
    let index = usize::try_from(n % u64::try_from(count).ok()?.max(1)).ok()?;
    free.into_iter().nth(index)
}

/// A random number: std's hasher keys are seeded from the OS per process, and differ for
/// every `RandomState`.
fn random() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos().into())
            .unwrap_or_default(),
    );
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_only_free_ids() {
        let used: BTreeSet<u32> = (1..=4093).collect();
        for n in [0, 1, 7, u64::MAX] {
            assert_eq!(pick_free(&used, n), Some(4094));
        }
        let all: BTreeSet<u32> = (1..=4094).collect();
        assert_eq!(pick_free(&all, 3), None);
        let none = BTreeSet::new();
        assert_eq!(pick_free(&none, 0), Some(1));
        assert_eq!(pick_free(&none, 4093), Some(4094));
        assert_eq!(pick_free(&none, 4094), Some(1));
        // Ids outside 1..=4094 (another segmentation type's) take nothing away.
        let odd: BTreeSet<u32> = [0, 5000].into();
        assert_eq!(pick_free(&odd, 0), Some(1));
    }

    #[test]
    fn picks_are_spread() {
        let used = BTreeSet::new();
        let picks: BTreeSet<u16> = (0..20).filter_map(|_| pick_free(&used, random())).collect();
        assert!(picks.len() > 10, "{picks:?}");
    }

    #[test]
    fn an_existing_subport_keeps_a_valid_id_only() {
        let s = |id| Subport {
            port_id: "p".into(),
            segmentation_type: "vlan".into(),
            segmentation_id: id,
            mac_address: None,
        };
        assert_eq!(vlan_id(&s(12)).unwrap(), 12);
        assert!(vlan_id(&s(0)).is_err());
        assert!(vlan_id(&s(70000)).is_err());
    }
}
