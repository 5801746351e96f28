//! Published ports (`-p`, `-P`): Neutron floating-IP port forwardings from a floating IP to
//! the container port's address.
//!
//! Which floating IP:
//! - no host IP (`-p 8080:80`): the Docker network's floating IP on this host, allocated
//!   from the external network of the router the container's subnet is on when the first
//!   container publishes, shared by every container of the network on this host, and
//!   released when its last forwarding goes (or with the network);
//! - a host IP (`-p 172.24.4.57:8080:80`): that floating IP of the project, which must have
//!   no port associated; kuryr never releases it.
//!
//! Docker sends host ports as given: none (`-p 80`, `-P`) or a range (`-p 8000-8010:80`) are
//! for kuryr to choose, the first free one of the range, or of 49153-60999 (the ephemeral
//! range Docker's bridge uses).
//!
//! How Neutron tells what kuryr made: a network's floating IP has the description
//! [`published_fip_description`] (how a lost answer is found) and the network's id tags and
//! this host's; a floating IP a user named carries the network's id tags and
//! [`USER_FIP_TAG`] while kuryr forwards on it. A forwarding's description names its Docker
//! endpoint, so a host port already taken names who holds it. Neutron removes a port's
//! forwardings with the port, and a floating IP's with it.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use kuryr_libnetwork::network::PortBinding;
use kuryr_libnetwork::DockerId;
use kuryr_openstack::neutron::{
    Filters, FloatingIp, FloatingIpSpec, Port, PortForwarding, PortForwardingSpec,
};

use crate::error::{neutron_err, DriverError, Result};
use crate::mapping::{
    self, forwarding_description, id_tags, published_fip_description, USER_FIP_TAG,
};
use crate::Driver;

/// The ports kuryr picks from when Docker gives no host port.
const EPHEMERAL: (u16, u16) = (49153, 60999);

/// One `-p` binding as kuryr forwards it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub protocol: &'static str,
    /// The container's port.
    pub internal: u16,
    /// None: the network's floating IP.
    pub address: Option<Ipv4Addr>,
    /// The host ports it may take (one, a range, or [`EPHEMERAL`]).
    pub host_ports: (u16, u16),
}

/// A forwarding as the user reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub address: String,
    pub external_port: u32,
    pub protocol: String,
    pub internal: String,
}

impl std::fmt::Display for Published {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}/{} -> {}",
            self.address, self.external_port, self.protocol, self.internal
        )
    }
}

/// Read Docker's port map (validated before anything is made).
pub fn wanted(bindings: &[PortBinding]) -> Result<Vec<Wanted>> {
    let wanted: Vec<Wanted> = bindings.iter().map(wanted_one).collect::<Result<_>>()?;
    // Neutron forwards one internal address and port from one place only ("port collision
    // with the internal_port_range"), whatever the floating IPs.
    for (i, w) in wanted.iter().enumerate() {
        if wanted[..i]
            .iter()
            .any(|o| o.protocol == w.protocol && o.internal == w.internal)
        {
            return Err(DriverError::invalid(format!(
                "container port {}/{} is published twice; Neutron forwards a container port \
                 from one floating IP port only: publish it once",
                w.internal, w.protocol
            )));
        }
    }
    Ok(wanted)
}

fn wanted_one(b: &PortBinding) -> Result<Wanted> {
    let protocol = match b.proto {
        6 => "tcp",
        17 => "udp",
        132 => "sctp",
        other => {
            return Err(DriverError::invalid(format!(
                "published port {} has protocol number {other}; Neutron forwards tcp, udp \
                 and sctp",
                b.port
            )))
        }
    };
    if b.port == 0 {
        return Err(DriverError::invalid(
            "a published container port cannot be 0",
        ));
    }
    let address = match b.host_ip.as_str() {
        "" | "0.0.0.0" => None,
        ip => match ip.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(a)) if !a.is_loopback() => Some(a),
            Ok(_) => {
                return Err(DriverError::invalid(format!(
                    "-p {ip}:{}:{}: kuryr publishes ports on Neutron floating IPs (IPv4), not \
                     on the host's addresses; leave the address out to use the network's \
                     floating IP, or name a floating IP of the project",
                    b.host_port, b.port
                )))
            }
            Err(_) => {
                return Err(DriverError::invalid(format!(
                    "published port {}: host IP {ip:?} is not an IP address",
                    b.port
                )))
            }
        },
    };
    let host_ports = match (b.host_port, b.host_port_end) {
        (0, _) => EPHEMERAL,
        (lo, hi) if hi <= lo => (lo, lo),
        (lo, hi) => (lo, hi),
    };
    Ok(Wanted {
        protocol,
        internal: b.port,
        address,
        host_ports,
    })
}

impl Driver {
    /// Forward every wanted port to `port`'s IPv4 address; all of them or none (a failure
    /// removes what this call made).
    pub(crate) async fn publish(
        &self,
        network: &DockerId,
        endpoint: &DockerId,
        port: &Port,
        wanted: &[Wanted],
    ) -> Result<Vec<Published>> {
        let internal_ip = port
            .fixed_ips
            .iter()
            .find(|ip| ip.ip_address.parse::<Ipv4Addr>().is_ok())
            .ok_or_else(|| {
                DriverError::invalid(format!(
                    "port {} has no IPv4 address, and Neutron forwards published ports to \
                     IPv4 addresses only",
                    port.id
                ))
            })?;
        let _publishing = self.locks.lock(publish_lock(network)).await;
        let mut made = Made::default();
        let result = self
            .publish_steps(network, endpoint, port, internal_ip, wanted, &mut made)
            .await;
        if result.is_err() {
            self.undo_publish(made).await;
        }
        result
    }

    async fn publish_steps(
        &self,
        network: &DockerId,
        endpoint: &DockerId,
        port: &Port,
        internal_ip: &kuryr_openstack::neutron::FixedIp,
        wanted: &[Wanted],
        made: &mut Made,
    ) -> Result<Vec<Published>> {
        let mut by_address: BTreeMap<Option<Ipv4Addr>, Vec<&Wanted>> = BTreeMap::new();
        for w in wanted {
            by_address.entry(w.address).or_default().push(w);
        }
        let mut published = Vec::new();
        for (address, wanted) in by_address {
            let fip = match address {
                None => self.network_fip(network, internal_ip, made).await?,
                Some(a) => self.user_fip(a, network).await?,
            };
            let api = self.neutron.port_forwardings(&fip.id).map_err(|e| {
                DriverError::neutron(format!("forwarding on floating IP {}", fip.id), &e)
            })?;
            let mut existing =
                api.list(&Filters::new())
                    .await
                    .map_err(neutron_err(format_args!(
                        "listing the port forwardings of {}",
                        fip.floating_ip_address
                    )))?;
            for w in wanted {
                // A call sent again finds what it made.
                let done = existing.iter().find(|pf| {
                    pf.internal_port_id == port.id
                        && pf.internal_port == Some(u32::from(w.internal))
                        && pf.protocol == w.protocol
                        && pf.external_port.is_some_and(|p| {
                            (u32::from(w.host_ports.0)..=u32::from(w.host_ports.1)).contains(&p)
                        })
                });
                let pf = match done {
                    Some(pf) => pf.clone(),
                    None => {
                        let external = free_host_port(&existing, w, &fip)?;
                        let spec = PortForwardingSpec {
                            protocol: Some(w.protocol.into()),
                            external_port: Some(u32::from(external)),
                            internal_port: Some(u32::from(w.internal)),
                            internal_ip_address: Some(internal_ip.ip_address.clone()),
                            internal_port_id: Some(port.id.clone()),
                            description: Some(forwarding_description(endpoint)),
                        };
                        let marks = Filters::new()
                            .eq("external_port", external.to_string())
                            .eq("protocol", w.protocol)
                            .eq("internal_port_id", port.id.as_str());
                        let pf = api
                            .create_once_found_by(&spec, &marks, |mut found| found.pop())
                            .await;
                        let pf = match pf {
                            Ok(pf) => pf,
                            Err(e) => {
                                return Err(self
                                    .explain_forwarding_failure(&fip, w, external, &e)
                                    .await)
                            }
                        };
                        made.forwardings.push((fip.id.clone(), pf.id.clone()));
                        existing.push(pf.clone());
                        pf
                    }
                };
                published.push(Published {
                    address: fip.floating_ip_address.clone(),
                    external_port: pf.external_port.unwrap_or_default(),
                    protocol: pf.protocol.clone(),
                    internal: format!("{}:{}", internal_ip.ip_address, w.internal),
                });
            }
        }
        Ok(published)
    }

    /// The Docker network's floating IP on this host: found by its description, or made.
    async fn network_fip(
        &self,
        network: &DockerId,
        internal_ip: &kuryr_openstack::neutron::FixedIp,
        made: &mut Made,
    ) -> Result<FloatingIp> {
        let api = self.neutron.floating_ips();
        let description = published_fip_description(network, &self.config.host_id);
        let marks = Filters::new().eq("description", description.as_str());
        let mut tags = id_tags(network).to_vec();
        tags.push(mapping::host_tag(&self.config.host_id));
        let found = api.list(&marks).await.map_err(neutron_err(format_args!(
            "looking up the floating IP of Docker network {}",
            network.as_str()
        )))?;
        if let Some(fip) = found.into_iter().min_by(|a, b| a.id.cmp(&b.id)) {
            // Made by a call that stopped before tagging it.
            self.add_tags(api, &fip.id, &fip.tags, &tags)
                .await
                .map_err(neutron_err(format_args!("tagging floating IP {}", fip.id)))?;
            return Ok(fip);
        }
        let router = self.router_of_subnet(&internal_ip.subnet_id).await?;
        let external = router
            .external_gateway_info
            .as_ref()
            .map(|g| g.network_id.clone())
            .ok_or_else(|| {
                DriverError::conflict(format!(
                    "router {} ({}) of subnet {} has no external gateway, so it has no \
                     floating IPs to publish ports on; set its gateway (openstack router set \
                     --external-gateway <network> {})",
                    router.id, router.name, internal_ip.subnet_id, router.id
                ))
            })?;
        let spec = FloatingIpSpec {
            floating_network_id: Some(external.clone()),
            description: Some(description),
            ..Default::default()
        };
        let fip = api
            .create_once_found_by(&spec, &marks, |mut found| {
                found.sort_by(|a, b| a.id.cmp(&b.id));
                found.into_iter().next()
            })
            .await
            .map_err(neutron_err(format_args!(
                "allocating a floating IP from network {external} for the published ports of \
                 Docker network {}",
                network.as_str()
            )))?;
        made.fip = Some(fip.id.clone());
        api.replace_tags(&fip.id, &tags)
            .await
            .map_err(neutron_err(format_args!("tagging floating IP {}", fip.id)))?;
        tracing::info!(network = %network.as_str(), address = %fip.floating_ip_address, "allocated the network's floating IP for published ports");
        Ok(FloatingIp { tags, ..fip })
    }

    /// A floating IP the user named as the host IP of `-p`.
    async fn user_fip(&self, address: Ipv4Addr, network: &DockerId) -> Result<FloatingIp> {
        let api = self.neutron.floating_ips();
        let mut found = self.project_fips_at(address).await?;
        let Some(fip) = found.pop() else {
            return Err(DriverError::not_found(format!(
                "-p {address}:...: {address} is not a floating IP of the project; kuryr \
                 publishes ports on floating IPs: allocate it (openstack floating ip create \
                 --floating-ip-address {address} <external network>) or leave the address out \
                 to use the network's floating IP"
            )));
        };
        if mapping::is_published_fip_description(&fip.description)
            || mapping::endpoint_of_fip_description(&fip.description).is_some()
        {
            return Err(DriverError::conflict(format!(
                "-p {address}:...: {address} is a floating IP kuryr allocated ({}) and releases \
                 with what it serves; name a floating IP of your own",
                fip.description
            )));
        }
        if let Some(port) = &fip.port_id {
            return Err(DriverError::conflict(format!(
                "floating IP {address} is associated with port {port}, and Neutron forwards \
                 ports only on a floating IP without one; disassociate it or name another"
            )));
        }
        // One tag at a time: another Docker network may tag the same floating IP meanwhile.
        let mut tags = id_tags(network).to_vec();
        tags.push(USER_FIP_TAG.to_owned());
        for tag in tags.iter().filter(|t| !fip.tags.contains(t)) {
            api.add_tag(&fip.id, tag)
                .await
                .map_err(neutron_err(format_args!("tagging floating IP {address}")))?;
        }
        Ok(fip)
    }

    /// A forwarding Neutron refused: a host port someone took meanwhile is named.
    async fn explain_forwarding_failure(
        &self,
        fip: &FloatingIp,
        w: &Wanted,
        external: u16,
        err: &kuryr_openstack::Error,
    ) -> DriverError {
        let doing = format!(
            "forwarding {}:{external}/{} to container port {}",
            fip.floating_ip_address, w.protocol, w.internal
        );
        if matches!(err.status(), Some(400 | 409)) {
            if let Ok(api) = self.neutron.port_forwardings(&fip.id) {
                if let Ok(existing) = api.list(&Filters::new()).await {
                    if let Some(holder) = holder_of(&existing, w.protocol, u32::from(external)) {
                        return DriverError::conflict(format!(
                            "{}:{external}/{} is already forwarded to {holder}; publish on \
                             another host port",
                            fip.floating_ip_address, w.protocol
                        ));
                    }
                }
            }
        }
        DriverError::neutron(doing, err)
    }

    /// Remove the forwardings to `port` that kuryr made for a Docker network, and the
    /// network's floating IP once nothing is forwarded on it.
    pub(crate) async fn unpublish(&self, network: &DockerId, port_id: &str) -> Result<()> {
        let _publishing = self.locks.lock(publish_lock(network)).await;
        let api = self.neutron.floating_ips();
        let fips = api
            .list(&Filters::new().tags(id_tags(network)))
            .await
            .map_err(neutron_err(format_args!(
                "looking up the floating IPs of Docker network {}",
                network.as_str()
            )))?;
        let ours = published_fip_description(network, &self.config.host_id);
        for fip in fips {
            let own = fip.description == ours;
            if !own && !fip.tags.iter().any(|t| t == USER_FIP_TAG) {
                continue;
            }
            let pfs = self.neutron.port_forwardings(&fip.id).map_err(|e| {
                DriverError::neutron(format!("forwarding on floating IP {}", fip.id), &e)
            })?;
            let all = pfs
                .list(&Filters::new())
                .await
                .map_err(neutron_err(format_args!(
                    "listing the port forwardings of {}",
                    fip.floating_ip_address
                )))?;
            let (mine, others): (Vec<_>, Vec<_>) = all
                .into_iter()
                .partition(|pf| pf.internal_port_id == port_id);
            for pf in &mine {
                match pfs.delete(&pf.id).await {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => {
                        return Err(DriverError::neutron(
                            format!(
                                "removing the forwarding of {}:{}/{}",
                                fip.floating_ip_address,
                                pf.external_port.unwrap_or_default(),
                                pf.protocol
                            ),
                            &e,
                        ))
                    }
                }
            }
            if !others.is_empty() || (mine.is_empty() && !own) {
                continue;
            }
            if own {
                self.release_fip(&fip).await?;
            } else {
                self.untag_user_fip(&fip, network)
                    .await
                    .map_err(neutron_err(format_args!(
                        "untagging floating IP {}",
                        fip.floating_ip_address
                    )))?;
            }
        }
        Ok(())
    }

    /// DeleteNetwork: this host's floating IP of the network goes (with whatever is still
    /// forwarded on it), and users' floating IPs lose the network's tags.
    pub(crate) async fn release_network_fips(&self, network: &DockerId) -> Result<()> {
        let api = self.neutron.floating_ips();
        let doing = || {
            format!(
                "releasing the floating IPs of Docker network {}",
                network.as_str()
            )
        };
        let ours = published_fip_description(network, &self.config.host_id);
        // One whose tags were never written (a crash right after its creation) is the
        // reconciler's: its description names a network Docker no longer has.
        let fips = api
            .list(&Filters::new().tags(id_tags(network)))
            .await
            .map_err(|e| DriverError::neutron(doing(), &e))?;
        for fip in fips {
            if fip.description == ours {
                self.release_fip(&fip).await?;
            } else if fip.tags.iter().any(|t| t == USER_FIP_TAG) {
                self.untag_user_fip(&fip, network)
                    .await
                    .map_err(|e| DriverError::neutron(doing(), &e))?;
            }
        }
        Ok(())
    }

    /// A user's floating IP no longer used by `network`; it stays marked while another
    /// Docker network forwards on it.
    async fn untag_user_fip(
        &self,
        fip: &FloatingIp,
        network: &DockerId,
    ) -> kuryr_openstack::Result<()> {
        let mut tags = id_tags(network).to_vec();
        let other_networks = fip
            .tags
            .iter()
            .any(|t| mapping::is_id_tag(t) && !tags.contains(t));
        if !other_networks {
            tags.push(USER_FIP_TAG.to_owned());
        }
        // One tag at a time, as they were added.
        let api = self.neutron.floating_ips();
        for tag in tags.iter().filter(|t| fip.tags.contains(t)) {
            api.remove_tag(&fip.id, tag).await?;
        }
        Ok(())
    }

    /// The floating IPs of kuryr's project at an address (admin credentials see others').
    pub(crate) async fn project_fips_at(&self, address: Ipv4Addr) -> Result<Vec<FloatingIp>> {
        let project = self
            .neutron
            .session()
            .project_id()
            .await
            .map_err(neutron_err("finding kuryr's project"))?;
        let mut filters = Filters::new().eq("floating_ip_address", address.to_string());
        if let Some(project) = project {
            filters = filters.eq("project_id", project);
        }
        self.neutron
            .floating_ips()
            .list(&filters)
            .await
            .map_err(neutron_err(format_args!(
                "looking up floating IP {address}"
            )))
    }

    async fn release_fip(&self, fip: &FloatingIp) -> Result<()> {
        match self.neutron.floating_ips().delete(&fip.id).await {
            Ok(_) => {
                tracing::info!(address = %fip.floating_ip_address, "released a network's floating IP: nothing is published on it any more");
                Ok(())
            }
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(DriverError::neutron(
                format!("releasing floating IP {}", fip.floating_ip_address),
                &e,
            )),
        }
    }

    /// Best effort: a failed publish leaves nothing it made.
    async fn undo_publish(&self, made: Made) {
        for (fip, pf) in &made.forwardings {
            if let Ok(api) = self.neutron.port_forwardings(fip) {
                if let Err(e) = api.delete(pf).await {
                    tracing::warn!(%fip, forwarding = %pf, "rolling back -p: cannot remove a forwarding: {e}");
                }
            }
        }
        if let Some(fip) = &made.fip {
            if let Err(e) = self.neutron.floating_ips().delete(fip).await {
                tracing::warn!(%fip, "rolling back -p: cannot release floating IP: {e}");
            }
        }
    }
}

/// What one publish made, undone when a later step fails.
#[derive(Default)]
struct Made {
    fip: Option<String>,
    forwardings: Vec<(String, String)>,
}

fn publish_lock(network: &DockerId) -> String {
    format!("publish:{}", network.as_str())
}

/// Who holds a host port on a floating IP, for messages.
fn holder_of(existing: &[PortForwarding], protocol: &str, external: u32) -> Option<String> {
    let pf = existing
        .iter()
        .find(|pf| pf.protocol == protocol && pf.external_port == Some(external))?;
    let to = format!(
        "{}:{}",
        pf.internal_ip_address,
        pf.internal_port.unwrap_or_default()
    );
    Some(match mapping::endpoint_of_forwarding(&pf.description) {
        Some(endpoint) => format!(
            "{to} (Docker endpoint {endpoint}, port {})",
            pf.internal_port_id
        ),
        None => format!(
            "{to} (port {}, by a forwarding kuryr did not make: {})",
            pf.internal_port_id, pf.id
        ),
    })
}

/// The host port a binding takes: its own if free, else the first free one of its range.
fn free_host_port(existing: &[PortForwarding], w: &Wanted, fip: &FloatingIp) -> Result<u16> {
    let taken = |p: u16| {
        existing
            .iter()
            .any(|pf| pf.protocol == w.protocol && pf.external_port == Some(u32::from(p)))
    };
    let (lo, hi) = w.host_ports;
    if lo == hi && taken(lo) {
        let holder = holder_of(existing, w.protocol, u32::from(lo)).unwrap_or_default();
        return Err(DriverError::conflict(format!(
            "{}:{lo}/{} is already forwarded to {holder}; publish on another host port",
            fip.floating_ip_address, w.protocol
        )));
    }
    (lo..=hi).find(|p| !taken(*p)).ok_or_else(|| {
        DriverError::conflict(format!(
            "every host port {lo}-{hi}/{} of {} is already forwarded; publish on another \
             range",
            w.protocol, fip.floating_ip_address
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(proto: u8, host_ip: &str, port: u16, host: (u16, u16)) -> PortBinding {
        PortBinding {
            proto,
            ip: String::new(),
            port,
            host_ip: host_ip.into(),
            host_port: host.0,
            host_port_end: host.1,
        }
    }

    #[test]
    fn reads_every_form_docker_sends() {
        let w = wanted(&[
            binding(6, "", 80, (18080, 18080)),
            binding(17, "172.24.4.57", 53, (18120, 18120)),
            binding(132, "0.0.0.0", 53, (0, 0)),
            binding(6, "", 81, (18100, 18110)),
        ])
        .unwrap();
        assert_eq!(
            w,
            vec![
                Wanted {
                    protocol: "tcp",
                    internal: 80,
                    address: None,
                    host_ports: (18080, 18080)
                },
                Wanted {
                    protocol: "udp",
                    internal: 53,
                    address: Some(Ipv4Addr::new(172, 24, 4, 57)),
                    host_ports: (18120, 18120)
                },
                Wanted {
                    protocol: "sctp",
                    internal: 53,
                    address: None,
                    host_ports: EPHEMERAL
                },
                Wanted {
                    protocol: "tcp",
                    internal: 81,
                    address: None,
                    host_ports: (18100, 18110)
                },
            ]
        );
    }

    #[test]
    fn refuses_a_container_port_published_twice() {
        let err = wanted(&[
            binding(6, "", 80, (8080, 8080)),
            binding(17, "", 80, (8080, 8080)),
            binding(6, "172.24.4.57", 80, (8081, 8081)),
        ])
        .unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(
            err.report().contains("80/tcp is published twice"),
            "{}",
            err.report()
        );
    }

    #[test]
    fn refuses_host_addresses_and_unknown_protocols() {
        for (b, needle) in [
            (binding(6, "127.0.0.1", 80, (8080, 8080)), "floating IPs"),
            (binding(6, "::1", 80, (8080, 8080)), "floating IPs"),
            (binding(6, "nope", 80, (8080, 8080)), "not an IP address"),
            (binding(33, "", 80, (8080, 8080)), "protocol number 33"),
        ] {
            let err = wanted(&[b]).unwrap_err();
            assert_eq!(err.status(), 400);
            assert!(err.report().contains(needle), "{}", err.report());
        }
    }

    fn pf(protocol: &str, external: u32, description: &str) -> PortForwarding {
        PortForwarding {
            id: "pf".into(),
            protocol: protocol.into(),
            external_port: Some(external),
            internal_port: Some(80),
            internal_ip_address: "10.0.0.5".into(),
            internal_port_id: "p1".into(),
            description: description.into(),
        }
    }

    #[test]
    fn picks_free_host_ports_and_names_the_holder() {
        let fip = FloatingIp {
            floating_ip_address: "172.24.4.57".into(),
            ..Default::default()
        };
        let ep = "a".repeat(64).parse::<DockerId>().unwrap();
        let existing = vec![
            pf("tcp", 18080, &forwarding_description(&ep)),
            pf("tcp", 18081, "someone's"),
            pf("udp", 18082, ""),
        ];
        let w = |lo, hi| Wanted {
            protocol: "tcp",
            internal: 80,
            address: None,
            host_ports: (lo, hi),
        };
        assert_eq!(
            free_host_port(&existing, &w(18080, 18085), &fip).unwrap(),
            18082
        );
        assert_eq!(
            free_host_port(&existing, &w(EPHEMERAL.0, EPHEMERAL.1), &fip).unwrap(),
            49153
        );
        let taken = free_host_port(&existing, &w(18080, 18080), &fip).unwrap_err();
        assert_eq!(taken.status(), 409);
        assert!(
            taken
                .report()
                .contains(&format!("Docker endpoint {}", ep.as_str())),
            "{}",
            taken.report()
        );
        let other = free_host_port(&existing, &w(18081, 18081), &fip).unwrap_err();
        assert!(
            other.report().contains("kuryr did not make"),
            "{}",
            other.report()
        );
        let full = free_host_port(&existing, &w(18080, 18081), &fip).unwrap_err();
        assert!(
            full.report().contains("every host port 18080-18081/tcp"),
            "{}",
            full.report()
        );
    }
}
