//! A floating IP for a container: `--driver-opt neutron.floatingip=auto|<address>` on one
//! endpoint (`docker run --network name=N,driver-opt=...`, `docker network connect
//! --driver-opt ...`), or `-o neutron.floatingip=auto` on a network for all of its
//! containers (`--driver-opt neutron.floatingip=none` opts one out).
//!
//! `auto` allocates one from the external network of the router the container's subnet is
//! on, associated with its port in the same request, and releases it when the endpoint goes;
//! an address names a floating IP of the project, associated with the port and only
//! disassociated when the endpoint goes. A floating IP kuryr allocates has the description
//! [`endpoint_fip_description`], by which a lost answer is found. Neutron refuses port
//! forwardings (`-p`) to an address that has a floating IP: such a container is reached on
//! its floating IP at every port its security groups open (`--expose`).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Mutex;

use kuryr_libnetwork::network::{CreateEndpointRequest, EndpointRequest};
use kuryr_libnetwork::DockerId;
use kuryr_openstack::neutron::{Filters, FloatingIp, FloatingIpSpec, Network, Port};

use crate::error::{neutron_err, DriverError, Result};
use crate::mapping::{endpoint_fip_description, fip_auto_tag};
use crate::Driver;

/// The option, on an endpoint or (`auto` only) on a network.
pub const FLOATING_IP_OPTION: &str = "neutron.floatingip";

/// What an endpoint asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FloatingIpChoice {
    Auto,
    Address(Ipv4Addr),
}

/// The endpoint's own choice: None when it says nothing (the network's then applies),
/// Some(None) for `none`.
pub fn endpoint_choice(value: Option<&str>) -> Result<Option<Option<FloatingIpChoice>>> {
    let Some(value) = value else { return Ok(None) };
    match value {
        v if v.eq_ignore_ascii_case("auto") => Ok(Some(Some(FloatingIpChoice::Auto))),
        v if v.eq_ignore_ascii_case("none") => Ok(Some(None)),
        v => match v.parse::<Ipv4Addr>() {
            Ok(a) => Ok(Some(Some(FloatingIpChoice::Address(a)))),
            Err(_) => Err(DriverError::invalid(format!(
                "{FLOATING_IP_OPTION}={v:?}: give auto (a new floating IP), none, or the \
                 address of a floating IP of the project"
            ))),
        },
    }
}

/// Which endpoints this daemon gave a floating IP (true) or not (false); one it does not
/// know of (made before a restart) is looked up in Neutron when it goes.
#[derive(Debug, Default)]
pub(crate) struct EndpointFips(Mutex<HashMap<String, bool>>);

impl EndpointFips {
    fn set(&self, endpoint: &str, has: bool) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(endpoint.to_owned(), has);
    }

    fn take(&self, endpoint: &str) -> Option<bool> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(endpoint)
    }
}

impl Driver {
    /// What a new endpoint gets: its own option, else its network's.
    pub(crate) async fn floating_ip_wanted(
        &self,
        req: &CreateEndpointRequest,
    ) -> Result<Option<FloatingIpChoice>> {
        let own = req.options.0.get(FLOATING_IP_OPTION).map(|v| {
            v.as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| v.to_string())
        });
        if let Some(choice) = endpoint_choice(own.as_deref())? {
            return Ok(choice);
        }
        let Some(network) = self.cached_network(&req.network_id).await? else {
            return Ok(None);
        };
        Ok(network_wants_fip(&network, &req.network_id).then_some(FloatingIpChoice::Auto))
    }

    /// Give the endpoint's port its floating IP; the address, for the log.
    pub(crate) async fn associate_fip(
        &self,
        endpoint: &DockerId,
        port: &Port,
        choice: &FloatingIpChoice,
    ) -> Result<String> {
        let fixed = port
            .fixed_ips
            .iter()
            .find(|ip| ip.ip_address.parse::<Ipv4Addr>().is_ok())
            .ok_or_else(|| {
                DriverError::invalid(format!(
                    "{FLOATING_IP_OPTION}: port {} has no IPv4 address for a floating IP",
                    port.id
                ))
            })?;
        let api = self.neutron.floating_ips();
        self.endpoint_fips.set(endpoint.as_str(), true);
        // A pool port that had a floating IP is not handed to another container.
        self.pooled_exposed(endpoint.as_str());
        self.ledger.set_exposed(endpoint.as_str());
        match choice {
            FloatingIpChoice::Auto => {
                let router = self.router_of_subnet(&fixed.subnet_id).await?;
                let external = router
                    .external_gateway_info
                    .map(|g| g.network_id)
                    .ok_or_else(|| {
                        DriverError::conflict(format!(
                            "{FLOATING_IP_OPTION}: router {} of subnet {} has no external \
                             gateway to allocate a floating IP from",
                            router.id, fixed.subnet_id
                        ))
                    })?;
                let description = endpoint_fip_description(endpoint, &self.config.host_id);
                let spec = FloatingIpSpec {
                    floating_network_id: Some(external.clone()),
                    port_id: Some(Some(port.id.clone())),
                    fixed_ip_address: Some(fixed.ip_address.clone()),
                    description: Some(description.clone()),
                    ..Default::default()
                };
                let fip = api
                    .create_once_found_by(
                        &spec,
                        &Filters::new().eq("description", description.as_str()),
                        |mut found| found.pop(),
                    )
                    .await
                    .map_err(neutron_err(format_args!(
                        "allocating a floating IP from network {external} for port {}",
                        port.id
                    )))?;
                Ok(fip.floating_ip_address)
            }
            FloatingIpChoice::Address(address) => {
                let fip = self.fip_at(*address).await?;
                match fip.port_id.as_deref() {
                    Some(p) if p == port.id => return Ok(fip.floating_ip_address),
                    Some(p) => {
                        return Err(DriverError::conflict(format!(
                            "{FLOATING_IP_OPTION}={address}: the floating IP is associated \
                             with port {p}; disassociate it first or name another"
                        )))
                    }
                    None => {}
                }
                api.update(
                    &fip.id,
                    &FloatingIpSpec {
                        port_id: Some(Some(port.id.clone())),
                        fixed_ip_address: Some(fixed.ip_address.clone()),
                        ..Default::default()
                    },
                )
                .await
                .map_err(neutron_err(format_args!(
                    "associating floating IP {address} with port {}",
                    port.id
                )))?;
                Ok(fip.floating_ip_address)
            }
        }
    }

    async fn fip_at(&self, address: Ipv4Addr) -> Result<FloatingIp> {
        self.project_fips_at(address).await?.pop().ok_or_else(|| {
            DriverError::not_found(format!(
                "{address} is not a floating IP of the project; allocate it first \
                     (openstack floating ip create --floating-ip-address {address} <external \
                     network>) or ask for a new one with {FLOATING_IP_OPTION}=auto"
            ))
        })
    }

    /// The endpoint goes: the floating IP kuryr allocated for it is released, one the user
    /// named is disassociated.
    pub(crate) async fn release_endpoint_fips(&self, req: &EndpointRequest) -> Result<()> {
        let known = self.endpoint_fips.take(req.endpoint_id.as_str());
        if known == Some(false) {
            return Ok(());
        }
        let ours = endpoint_fip_description(&req.endpoint_id, &self.config.host_id);
        let api = self.neutron.floating_ips();
        let doing = || {
            format!(
                "releasing the floating IP of endpoint {}",
                req.endpoint_id.as_str()
            )
        };
        let mut fips = api
            .list(&Filters::new().eq("description", ours.as_str()))
            .await
            .map_err(|e| DriverError::neutron(doing(), &e))?;
        // A floating IP the user named is found by the port it is associated with.
        if let Some(port) = self.tagged_port_of(&req.endpoint_id).await? {
            for fip in api
                .list(&Filters::new().eq("port_id", port.id.as_str()))
                .await
                .map_err(|e| DriverError::neutron(doing(), &e))?
            {
                if !fips.iter().any(|f| f.id == fip.id) {
                    fips.push(fip);
                }
            }
        }
        for fip in fips {
            let result = if fip.description == ours {
                api.delete(&fip.id).await.map(|_| ())
            } else {
                api.update(
                    &fip.id,
                    &FloatingIpSpec {
                        port_id: Some(None),
                        ..Default::default()
                    },
                )
                .await
                .map(|_| ())
            };
            match result {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(DriverError::neutron(doing(), &e)),
            }
        }
        Ok(())
    }

    /// A new endpoint without a floating IP: nothing to look up when it goes.
    pub(crate) fn no_fip(&self, endpoint: &DockerId) {
        self.endpoint_fips.set(endpoint.as_str(), false);
    }
}

/// Whether `-o neutron.floatingip=auto` was given to the Docker network.
fn network_wants_fip(network: &Network, docker_network: &DockerId) -> bool {
    network.tags.contains(&fip_auto_tag(docker_network))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_endpoint_option() {
        assert_eq!(endpoint_choice(None).unwrap(), None);
        assert_eq!(
            endpoint_choice(Some("AUTO")).unwrap(),
            Some(Some(FloatingIpChoice::Auto))
        );
        assert_eq!(endpoint_choice(Some("none")).unwrap(), Some(None));
        assert_eq!(
            endpoint_choice(Some("172.24.4.9")).unwrap(),
            Some(Some(FloatingIpChoice::Address(Ipv4Addr::new(
                172, 24, 4, 9
            ))))
        );
        let err = endpoint_choice(Some("yes")).unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(
            err.report().contains("neutron.floatingip"),
            "{}",
            err.report()
        );
    }
}
