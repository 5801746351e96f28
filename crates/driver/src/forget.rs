//! Forgetting a control plane that is gone for good: a Docker engine wiped or replaced
//! takes its id with it, so no daemon will ever give back what its Docker networks mapped
//! on shared resources (their tags on existing networks, their mark on shared
//! subnetpools), and those networks could never be given back untagged. An operator names
//! the dead control plane (`kuryr gc --forget-control-plane ID`, the id `kuryr doctor`
//! showed on its host, or the `kuryr.cp:` tags in Neutron), and any daemon removes its
//! mappings as that control plane's DeleteNetwork and ReleasePool would have. Its ports are
//! its host's, which `kuryr gc` of a new daemon there cleans.

use kuryr_openstack::neutron::Filters;
use serde::Serialize;

use crate::control_plane::is_valid_id;
use crate::error::{neutron_err, DriverError, Result};
use crate::{mapping, Driver};

/// One mapping of the forgotten control plane.
#[derive(Debug, Clone, Serialize)]
pub struct Forgotten {
    /// `network` (a Docker network's tags on it) or `subnetpool` (the control plane's mark).
    pub kind: &'static str,
    /// The Neutron id.
    pub resource: String,
    /// What goes.
    pub what: String,
}

impl Driver {
    /// Removes (or with `dry_run`, lists) every mapping of control plane `id` on shared
    /// Neutron resources.
    ///
    /// # Errors
    /// `id` is not a control plane's id, or is this daemon's own; Neutron refused.
    pub async fn forget_control_plane(&self, id: &str, dry_run: bool) -> Result<Vec<Forgotten>> {
        if !is_valid_id(id) {
            return Err(DriverError::invalid(format!(
                "{id:?} is not a control plane id (at most 255 letters, digits and .:_-~)"
            )));
        }
        if self.config.control_plane.id().await.ok().as_deref() == Some(id) {
            return Err(DriverError::invalid(format!(
                "{id} is this daemon's own control plane; remove its Docker networks with \
                 `docker network rm` instead"
            )));
        }
        let mut done = Vec::new();
        let networks = self.neutron.networks();
        let all = networks
            .list(&Filters::new().fields(["id", "tags"]))
            .await
            .map_err(neutron_err("listing networks"))?;
        for network in all {
            for tags in mapping::mappings_of(&network.tags, id) {
                done.push(Forgotten {
                    kind: "network",
                    resource: network.id.clone(),
                    what: format!("tags {}", tags.join(", ")),
                });
                if !dry_run {
                    self.untag_each(networks.clone(), &network.id, &tags)
                        .await
                        .map_err(neutron_err(format_args!(
                            "untagging network {}",
                            network.id
                        )))?;
                }
            }
        }
        let mark = mapping::control_plane_tag(id);
        let pools = self
            .neutron
            .subnetpools()
            .list(&Filters::new().tags([mark.as_str()]))
            .await
            .map_err(neutron_err(format_args!(
                "listing the subnetpools tagged {mark}"
            )))?;
        for pool in pools {
            done.push(Forgotten {
                kind: "subnetpool",
                resource: pool.id.clone(),
                what: format!("tag {mark} ({})", pool.name),
            });
            if !dry_run {
                self.leave_pool(pool, Some(&mark)).await?;
            }
        }
        Ok(done)
    }
}
