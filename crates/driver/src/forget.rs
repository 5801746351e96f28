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
    /// Why it could not be removed (the next run tries again).
    pub error: Option<String>,
}

const MARK_PREFIX: &str = "kuryr.cp:";

impl Driver {
    /// Removes (or with `dry_run`, lists) every mapping of control plane `id` on shared
    /// Neutron resources. `id` may also be given as its `kuryr.cp:` tag.
    ///
    /// # Errors
    /// `id` is not a control plane's id, or is this daemon's own (or this daemon cannot
    /// tell its own); Neutron could not be read.
    pub async fn forget_control_plane(&self, id: &str, dry_run: bool) -> Result<Vec<Forgotten>> {
        let id = id.strip_prefix(MARK_PREFIX).unwrap_or(id);
        if !is_valid_id(id) {
            return Err(DriverError::invalid(format!(
                "{id:?} is not a control plane id (at most 255 letters, digits and .:_-~)"
            )));
        }
        if mapping::is_hashed_tag_value(id) {
            // A tag that holds a hash names the id only in part.
            return Err(DriverError::invalid(format!(
                "{MARK_PREFIX}{id} holds a hash of a long id, not the id: give the whole id \
                 (`kuryr doctor` on its host, or `docker info` of its engine)"
            )));
        }
        let own = self.config.control_plane.id().await?;
        if own == id {
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
                let error = if dry_run {
                    None
                } else {
                    self.untag_each(networks.clone(), &network.id, &tags)
                        .await
                        .err()
                        .map(|e| format!("untagging network {}: {e}", network.id))
                };
                done.push(Forgotten {
                    kind: "network",
                    resource: network.id.clone(),
                    what: format!("tags {}", tags.join(", ")),
                    error,
                });
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
            let (resource, what) = (pool.id.clone(), format!("tag {mark} ({})", pool.name));
            let error = if dry_run {
                None
            } else {
                self.leave_pool(pool, Some(&mark))
                    .await
                    .err()
                    .map(|e| e.report())
            };
            done.push(Forgotten {
                kind: "subnetpool",
                resource,
                what,
                error,
            });
        }
        Ok(done)
    }
}
