//! Routers: the subnets kuryr creates are attached to a router (`[neutron] default_router`,
//! or per network `-o neutron.router.uuid|name`; `-o neutron.router=none` for none), so that
//! containers reach other networks and, through the router's gateway, the outside (SNAT).
//!
//! A subnet carries the id of the router it is attached to in a tag (`kuryr.router:<id>`),
//! written before the interface is added: whoever removes the subnet (DeleteNetwork, a
//! rolled-back CreateNetwork, the reconciler) detaches exactly the interface kuryr added,
//! also after a crash between the two steps. Subnets kuryr did not create are never attached
//! or detached: their owner routes them.

use kuryr_openstack::neutron::{Filters, Router, RouterInterface, Subnet};

use crate::error::{neutron_err, DriverError, Result};
use crate::mapping::{router_of_tags, router_tag};
use crate::options::{NeutronOptions, RouterChoice};
use crate::Driver;

impl Driver {
    /// The router a network's new subnets go on, if any.
    pub(crate) async fn router_for(&self, opts: &NeutronOptions) -> Result<Option<Router>> {
        let named = match (&opts.router, &self.config.default_router) {
            (RouterChoice::None, _) | (RouterChoice::Default, None) => return Ok(None),
            (RouterChoice::Named(named), _) => named,
            (RouterChoice::Default, Some(named)) => named,
        };
        if let Some(router) = self.cache.router(named) {
            return Ok(Some(router));
        }
        let router = self
            .named(self.neutron.routers(), "router", named, |r: &Router| &r.id)
            .await
            .map_err(|e| {
                let from = match opts.router {
                    RouterChoice::Named(_) => "-o neutron.router.uuid|name",
                    _ => "[neutron] default_router in kuryr.conf",
                };
                e.context(format!(
                    "finding the router {named} that {from} names; fix it, or create the \
                     network with -o neutron.router=none"
                ))
            })?;
        self.cache.set_router(named, &router);
        Ok(Some(router))
    }

    /// The router a subnet is attached to: the one kuryr attached it to, or the router
    /// that has an interface on it.
    pub(crate) async fn router_of_subnet(&self, subnet_id: &str) -> Result<Router> {
        let no_router = || {
            DriverError::conflict(format!(
                "subnet {subnet_id} is on no router, so its containers cannot be reached from \
                 outside: published ports need the network's subnet on a router with an \
                 external gateway (set [neutron] default_router in kuryr.conf or create the \
                 network with -o neutron.router.name=<router>)"
            ))
        };
        let subnet = self
            .neutron
            .subnets()
            .get(subnet_id)
            .await
            .map_err(neutron_err(format_args!("reading subnet {subnet_id}")))?;
        let router_id = match router_of_tags(&subnet.tags).next() {
            Some(id) => id.to_owned(),
            None => {
                let interfaces = self
                    .neutron
                    .ports()
                    .list(
                        &Filters::new()
                            .eq("network_id", subnet.network_id.as_str())
                            .eq("fixed_ips", format!("subnet_id={subnet_id}"))
                            .fields(["device_id", "device_owner"]),
                    )
                    .await
                    .map_err(neutron_err(format_args!(
                        "looking for a router on subnet {subnet_id}"
                    )))?;
                interfaces
                    .into_iter()
                    .find(|p| p.device_owner.starts_with("network:router_interface"))
                    .map(|p| p.device_id)
                    .ok_or_else(no_router)?
            }
        };
        self.neutron
            .routers()
            .get_opt(&router_id)
            .await
            .map_err(neutron_err(format_args!("reading router {router_id}")))?
            .ok_or_else(no_router)
    }

    /// Attach a subnet kuryr just made (tagged with [`router_tag`]) to `router`.
    pub(crate) async fn attach_subnet(&self, router: &Router, subnet: &Subnet) -> Result<()> {
        let doing = || {
            format!(
                "attaching subnet {} ({}) to router {} ({})",
                subnet.id, subnet.cidr, router.id, router.name
            )
        };
        match self
            .neutron
            .add_router_interface(&router.id, &RouterInterface::Subnet(subnet.id.clone()))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                if e.is_not_found() {
                    // Deleted since it was looked up: look it up again next time.
                    self.cache.forget_router(&router.id);
                }
                let err = DriverError::neutron(doing(), &e);
                Err(if e.status() == Some(400) {
                    err.context(format!(
                        "router {} cannot route {}: pick another --subnet, another router \
                         (-o neutron.router.name=...), or none (-o neutron.router=none)",
                        router.name, subnet.cidr
                    ))
                } else {
                    err
                })
            }
        }
    }

    /// Detach from their routers the subnets whose tags say kuryr attached them; an
    /// interface already gone (or a router deleted) is fine.
    pub(crate) async fn detach_subnets(&self, subnets: &[Subnet]) -> Result<()> {
        for subnet in subnets {
            for router_id in router_of_tags(&subnet.tags) {
                self.detach_subnet(router_id, &subnet.id).await?;
            }
        }
        Ok(())
    }

    pub(crate) async fn detach_subnet(&self, router_id: &str, subnet_id: &str) -> Result<()> {
        match self
            .neutron
            .remove_router_interface(router_id, &RouterInterface::Subnet(subnet_id.to_owned()))
            .await
        {
            Ok(_) => {
                tracing::debug!(router = %router_id, subnet = %subnet_id, "detached");
                Ok(())
            }
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(DriverError::neutron(
                format!("detaching subnet {subnet_id} from router {router_id}"),
                &e,
            )),
        }
    }
}

/// The tags a new subnet gets for its router (none without one, or without a gateway:
/// Neutron puts the router's interface on the subnet's gateway address).
pub(crate) fn router_tags(router: Option<&Router>, gateway: bool) -> Vec<String> {
    router
        .filter(|_| gateway)
        .map(|r| router_tag(&r.id))
        .into_iter()
        .collect()
}
