//! The reconciler: what kuryr made that no operation will ever finish. It compares this
//! host's kuryr ports in Neutron, the interfaces kuryr plugged into Open vSwitch and, when
//! the caller can read it, Docker's own view (the endpoints and addresses of kuryr's
//! networks), and names the orphans:
//!
//! - an **endpoint port** whose Docker endpoint Docker no longer has (a DeleteEndpoint that
//!   never came: Docker ignores its errors, a kill -9 in between);
//! - an **address port** (RequestAddress's) whose address no Docker endpoint holds (the
//!   answer never reached Docker: a lost answer, a crash just before answering);
//! - a **host interface** plugged for a Neutron port that is gone or no longer holds the
//!   endpoint the interface was made for;
//! - a **network** kuryr created on this host whose Docker network Docker does not have (a
//!   CreateNetwork whose answer never reached Docker; Docker 20.10 forgets a network whose
//!   DeleteNetwork failed): it goes as DeleteNetwork would remove it, subnets and pools too;
//! - a **subnetpool** RequestPool made on this host that no subnet uses and whose CIDR no
//!   Docker network has (a RequestPool whose answer never reached Docker, or a Docker that
//!   died before its CreateNetwork): it is deleted.
//!
//! Only what kuryr made on this host is considered (ports bound here or carrying this host's
//! tag, interfaces with `owner=kuryr`); pool ports are the pools' own. An orphan is removed
//! only once it was seen twice, unchanged (same Neutron revision), and is older than a grace
//! time, so that a call in flight is never undone under it.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use kuryr_binding::{veth_names, PluggedInterface};
use kuryr_libnetwork::network::NetworkRequest;
use kuryr_libnetwork::DockerId;
use kuryr_openstack::neutron::{Api, Filters, FloatingIp, Network, Port, Resource, SubnetPool};
use serde::Serialize;

use crate::error::{host_err, neutron_err, DriverError, Result};
use crate::mapping::{self, DEVICE_OWNER, EXISTING_POOL_TAG, EXISTING_PORT_TAG, UNBOUND_PORT_NAME};
use crate::{Driver, PortMode};

/// What Docker's engine holds on kuryr's networks, as its API shows it.
#[derive(Debug, Default, Clone)]
pub struct DockerView {
    /// Endpoint ids of every container attached to a network of kuryr's driver.
    pub endpoints: HashSet<String>,
    /// Their addresses (any network, so a reused address is never taken for an orphan).
    pub addresses: HashSet<IpAddr>,
    /// The ids of all of Docker's networks.
    pub networks: HashSet<String>,
    /// The CIDRs of their address pools (`--subnet` and `--ip-range`).
    pub pool_cidrs: HashSet<IpNet>,
}

/// The kind of an orphan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrphanKind {
    EndpointPort,
    AddressPort,
    HostInterface,
    Network,
    Subnetpool,
    FloatingIp,
    /// This host's pool ports on a network none of Docker's networks maps.
    Pool,
}

/// One orphan: what it is and why it is one.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub kind: OrphanKind,
    /// The Neutron port id, or the interface's name.
    pub resource: String,
    /// Why it is an orphan, in words.
    pub why: String,
    #[serde(skip)]
    target: Target,
}

#[derive(Debug, Clone)]
enum Target {
    Port(Box<Port>),
    Interface(PluggedInterface),
    /// A Neutron network and the Docker network id its tags carry.
    Network(Box<Network>, String),
    Subnetpool(Box<SubnetPool>),
    FloatingIp(Box<FloatingIp>),
    /// The network, and the pool ports of this host on it that go.
    Pool(Box<Network>, Vec<String>),
}

impl Finding {
    /// What must be the same in two surveys for the orphan to count as seen twice.
    fn key(&self) -> (OrphanKind, String, u64) {
        let revision = match &self.target {
            Target::Port(p) => p.revision_number,
            Target::Network(n, _) | Target::Pool(n, _) => n.revision_number,
            Target::Subnetpool(p) => p.revision_number,
            Target::FloatingIp(f) => f.revision_number,
            Target::Interface(_) => 0,
        };
        (self.kind, self.resource.clone(), revision)
    }
}

/// One look at the host.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Survey {
    pub findings: Vec<Finding>,
    /// Kuryr ports of this host looked at.
    pub ports: usize,
    /// Networks kuryr created on this host looked at.
    pub networks: usize,
    /// Subnetpools kuryr made on this host looked at.
    pub subnetpools: usize,
    /// Floating IPs kuryr allocated on this host looked at.
    pub floating_ips: usize,
    /// Interfaces kuryr plugged looked at.
    pub interfaces: usize,
    /// What could not be compared, and why (Docker's view missing, Open vSwitch unreachable).
    pub notes: Vec<String>,
}

impl Survey {
    /// The findings of `self` also in `earlier`, unchanged: orphans seen twice.
    pub fn confirmed_by(&self, earlier: &Survey) -> Vec<Finding> {
        let seen: HashSet<_> = earlier.findings.iter().map(Finding::key).collect();
        self.findings
            .iter()
            .filter(|f| seen.contains(&f.key()))
            .cloned()
            .collect()
    }
}

/// Reads a resource again and returns it only if it is still as the survey saw it: one that
/// changed or went since is no longer judged an orphan.
async fn unchanged<R: Resource>(
    api: Api<R>,
    id: &str,
    what: &str,
    as_seen: impl FnOnce(&R) -> bool,
) -> Result<Option<R>> {
    let now = api
        .get_opt(id)
        .await
        .map_err(neutron_err(format_args!("reading {what} {id}")))?;
    Ok(now.filter(as_seen))
}

impl Driver {
    /// Looks for orphans; ports updated within `min_age` are left out (a call may be
    /// working on them). Without `docker`, only host interfaces can be judged.
    ///
    /// # Errors
    /// Neutron could not be read.
    /// `pools`: also judge pool ports on networks none of Docker's networks maps (only on an
    /// operator's `kuryr gc`: a pool filled ahead for a Docker network to come looks the
    /// same, and the pools give idle ports back by themselves).
    pub async fn survey(
        &self,
        docker: Option<&DockerView>,
        min_age: Duration,
        pools: bool,
    ) -> Result<Survey> {
        let mut survey = Survey::default();
        let ports = self.ports_of_this_host().await?;
        survey.ports = ports.len();
        let now = chrono::Utc::now();
        let old_enough = |p: &Port| {
            old_enough_at(
                p.updated_at.as_deref().or(p.created_at.as_deref()),
                now,
                min_age,
            )
        };
        // Addresses are Docker's only under a local control plane: a swarm manager holds
        // addresses for tasks no node runs yet.
        let local = self.config.capability_scope != "global";
        match docker {
            None => survey.notes.push(
                "Docker's API was not read: endpoint and address ports were not judged".into(),
            ),
            Some(_) if !local => survey.notes.push(
                "capability_scope = global: the swarm manager holds addresses, so address ports were not judged".into(),
            ),
            Some(_) => {}
        }
        for port in ports.values().filter(|p| old_enough(p)) {
            if let Some(finding) = judge_port(port, docker, local) {
                survey.findings.push(finding);
            }
        }
        if let (Some(docker), true) = (docker, local) {
            let networks = self.networks_of_this_host().await?;
            survey.networks = networks.len();
            for network in networks.iter().filter(|n| {
                old_enough_at(
                    n.updated_at.as_deref().or(n.created_at.as_deref()),
                    now,
                    min_age,
                )
            }) {
                // Docker networks of other control planes attached it: it serves them, and
                // its tags carry several Docker ids.
                if mapping::attached_by_some(&network.tags) {
                    continue;
                }
                let Some(docker_id) = mapping::id_of_tags(&network.tags) else {
                    continue;
                };
                if !docker.networks.contains(&docker_id) {
                    survey.findings.push(Finding {
                        kind: OrphanKind::Network,
                        resource: network.id.clone(),
                        why: format!("Docker has no network {docker_id}"),
                        target: Target::Network(Box::new(network.clone()), docker_id),
                    });
                }
            }
            let (looked_at, orphans) = self.survey_subnetpools(docker, now, min_age).await?;
            survey.subnetpools = looked_at;
            survey.findings.extend(orphans);
            if pools {
                survey
                    .findings
                    .extend(self.survey_pools(docker, now, min_age).await?);
            }
            let (looked_at, orphans) = self.survey_floating_ips(docker, now, min_age).await?;
            survey.floating_ips = looked_at;
            survey.findings.extend(orphans);
        }
        if matches!(self.config.port_mode, PortMode::Veth) {
            match self.survey_interfaces(&ports, &survey.findings).await {
                Ok((n, found)) => {
                    survey.interfaces = n;
                    survey.findings.extend(found);
                }
                Err(e) => survey
                    .notes
                    .push(format!("host interfaces were not checked: {}", e.report())),
            }
        }
        Ok(survey)
    }

    /// Removes a confirmed orphan. A port is read again first: one that changed or went
    /// since the survey is left alone.
    ///
    /// # Errors
    /// Neutron or the host refused; the next round tries again.
    pub async fn remove_orphan(&self, finding: &Finding) -> Result<bool> {
        match &finding.target {
            Target::Port(seen) => {
                let Some(port) = unchanged(self.neutron.ports(), &seen.id, "port", |p: &Port| {
                    p.revision_number == seen.revision_number
                })
                .await?
                else {
                    return Ok(false);
                };
                tracing::info!(port = %port.id, kind = ?finding.kind, "removing an orphan: {}", finding.why);
                self.remove_stale_port(&port).await?;
                Ok(true)
            }
            Target::Network(seen, docker_id) => {
                let Some(n) = unchanged(
                    self.neutron.networks(),
                    &seen.id,
                    "network",
                    |n: &Network| n.revision_number == seen.revision_number,
                )
                .await?
                else {
                    return Ok(false);
                };
                tracing::info!(network = %n.id, "removing an orphan: {}", finding.why);
                let req = NetworkRequest {
                    network_id: docker_id.parse().map_err(|e: String| {
                        DriverError::invalid(format!("network {}: {e}", n.id))
                    })?,
                };
                self.remove_network(&req).await?;
                Ok(true)
            }
            Target::Subnetpool(seen) => {
                let api = self.neutron.subnetpools();
                let Some(p) = unchanged(api.clone(), &seen.id, "subnetpool", |p: &SubnetPool| {
                    p.revision_number == seen.revision_number
                })
                .await?
                else {
                    return Ok(false);
                };
                tracing::info!(subnetpool = %p.id, "removing an orphan: {}", finding.why);
                match api.delete(&p.id).await {
                    Ok(deleted) => Ok(deleted),
                    // A subnet was made from it since: no longer an orphan.
                    Err(e) if e.is_conflict() || e.kind() == Some("SubnetPoolDeleteError") => {
                        Ok(false)
                    }
                    Err(e) => Err(DriverError::neutron(
                        format!("deleting subnetpool {}", p.id),
                        &e,
                    )),
                }
            }
            Target::FloatingIp(seen) => {
                let api = self.neutron.floating_ips();
                let Some(f) = unchanged(api.clone(), &seen.id, "floating IP", |f: &FloatingIp| {
                    f.revision_number == seen.revision_number
                })
                .await?
                else {
                    return Ok(false);
                };
                tracing::info!(address = %f.floating_ip_address, "removing an orphan: {}", finding.why);
                api.delete(&f.id).await.map_err(neutron_err(format_args!(
                    "releasing floating IP {}",
                    f.floating_ip_address
                )))
            }
            Target::Pool(seen, ports) => {
                let Some(pools) = &self.pools else {
                    return Ok(false);
                };
                let Some(n) = unchanged(
                    self.neutron.networks(),
                    &seen.id,
                    "network",
                    |n: &Network| n.revision_number == seen.revision_number,
                )
                .await?
                else {
                    return Ok(false);
                };
                tracing::info!(network = %n.id, "removing orphans: {}", finding.why);
                Ok(pools.clear_ports(&n.id, ports).await > 0)
            }
            Target::Interface(iface) => {
                tracing::info!(interface = %iface.name, port = %iface.port_id, "removing an orphan: {}", finding.why);
                let binder = self.binder().await?;
                binder
                    .ovsdb
                    .del_ports_of(&iface.port_id)
                    .await
                    .map_err(host_err(format!("unplugging {}", iface.name)))?;
                for name in [iface.name.clone(), veth_names(&iface.port_id).host] {
                    binder
                        .netlink
                        .delete_link(&name)
                        .await
                        .map_err(host_err(format!("deleting {name}")))?;
                }
                Ok(true)
            }
        }
    }

    /// The kuryr ports of this host: bound here, or made here (this host's tag).
    async fn ports_of_this_host(&self) -> Result<HashMap<String, Port>> {
        let api = self.neutron.ports();
        let host = &self.config.host_id;
        let bound = api
            .list(
                &Filters::new()
                    .eq("device_owner", DEVICE_OWNER)
                    .eq("binding:host_id", host.as_str()),
            )
            .await
            .map_err(neutron_err(format_args!(
                "listing the kuryr ports bound to {host}"
            )))?;
        let made = api
            .list(&Filters::new().tags([mapping::host_tag(host)]))
            .await
            .map_err(neutron_err(format_args!(
                "listing the ports kuryr made on {host}"
            )))?;
        Ok(bound
            .into_iter()
            .chain(made)
            .filter(|p| !p.tags.iter().any(|t| crate::pool::is_pool_tag(t)))
            // Made here but bound elsewhere: a swarm task's port, which this host's IPAM
            // took for a task that another host runs; that host judges it.
            .filter(|p| p.binding_host_id.is_empty() || p.binding_host_id == *host)
            .map(|p| (p.id.clone(), p))
            .collect())
    }

    /// This host's pool ports on networks that some Docker network maps but none of this
    /// engine's (a Docker engine wiped or replaced, a DeleteNetwork that never came): no
    /// container of this host can take them. Those a container of this engine holds, and
    /// young ones, are left.
    async fn survey_pools(
        &self,
        docker: &DockerView,
        now: chrono::DateTime<chrono::Utc>,
        min_age: Duration,
    ) -> Result<Vec<Finding>> {
        let Some(pools) = &self.pools else {
            return Ok(Vec::new());
        };
        let ports = pools
            .neutron_ports()
            .await
            .map_err(neutron_err("listing this host's pool ports"))?;
        let mut per_network: HashMap<&str, Vec<String>> = HashMap::new();
        for port in &ports {
            let old = old_enough_at(
                port.updated_at.as_deref().or(port.created_at.as_deref()),
                now,
                min_age,
            );
            let held_here =
                !port.device_id.is_empty() && docker.endpoints.contains(&port.device_id);
            if old && !held_here {
                per_network
                    .entry(port.network_id.as_str())
                    .or_default()
                    .push(port.id.clone());
            }
        }
        let docker_networks: Vec<[String; 2]> = docker
            .networks
            .iter()
            .filter_map(|id| id.parse::<DockerId>().ok())
            .map(|id| mapping::id_tags(&id))
            .collect();
        let mut findings = Vec::new();
        for (network_id, port_ids) in per_network {
            let network = self
                .neutron
                .networks()
                .get_opt(network_id)
                .await
                .map_err(neutron_err(format_args!("reading network {network_id}")))?;
            let Some(network) = network else {
                continue;
            };
            let mapped_by_some = network.tags.iter().any(|t| mapping::is_id_tag(t));
            let mapped_here = docker_networks
                .iter()
                .any(|tags| tags.iter().all(|t| network.tags.contains(t)));
            if !mapped_by_some || mapped_here {
                continue;
            }
            findings.push(Finding {
                kind: OrphanKind::Pool,
                resource: network.id.clone(),
                why: format!(
                    "{} pool ports of this host are on network {}, which none of \
                     Docker's networks maps",
                    port_ids.len(),
                    network.id
                ),
                target: Target::Pool(Box::new(network), port_ids),
            });
        }
        Ok(findings)
    }

    /// The floating IPs kuryr allocated on this host for an endpoint Docker no longer has
    /// (a crash between allocating and answering CreateEndpoint) or for the published ports
    /// of a network Docker no longer has (a DeleteNetwork that never came).
    async fn survey_floating_ips(
        &self,
        docker: &DockerView,
        now: chrono::DateTime<chrono::Utc>,
        min_age: Duration,
    ) -> Result<(usize, Vec<Finding>)> {
        let fips = self
            .neutron
            .floating_ips()
            .list(&Filters::new())
            .await
            .map_err(neutron_err(format_args!("listing floating IPs")))?;
        let host = mapping::host_tag(&self.config.host_id);
        let mut looked_at = 0;
        let mut findings = Vec::new();
        for fip in fips {
            let why = if let Some((endpoint, h)) =
                mapping::endpoint_of_fip_description(&fip.description)
            {
                if h != host {
                    continue;
                }
                looked_at += 1;
                (!docker.endpoints.contains(endpoint))
                    .then(|| format!("Docker has no endpoint {endpoint}"))
            } else if let Some((network, h)) = mapping::network_of_published_fip(&fip.description) {
                if h != host {
                    continue;
                }
                looked_at += 1;
                (!docker.networks.contains(network))
                    .then(|| format!("Docker has no network {network}"))
            } else {
                None
            };
            let old = old_enough_at(
                fip.updated_at.as_deref().or(fip.created_at.as_deref()),
                now,
                min_age,
            );
            if let Some(why) = why.filter(|_| old) {
                findings.push(Finding {
                    kind: OrphanKind::FloatingIp,
                    resource: fip.id.clone(),
                    why,
                    target: Target::FloatingIp(Box::new(fip)),
                });
            }
        }
        Ok((looked_at, findings))
    }

    /// The networks kuryr created on this host (an adopted network is the user's and carries
    /// no host tag).
    async fn networks_of_this_host(&self) -> Result<Vec<Network>> {
        let host = &self.config.host_id;
        self.neutron
            .networks()
            .list(&Filters::new().tags([mapping::host_tag(host)]))
            .await
            .map_err(neutron_err(format_args!(
                "listing the networks kuryr made on {host}"
            )))
    }

    /// The subnetpools RequestPool made on this host (their description names it) that no
    /// subnet uses and whose CIDR no Docker network has; Docker calls CreateNetwork right
    /// after RequestPool, so `min_age` covers a network being made. Pools a user named, or
    /// that pin a named subnet, are left.
    async fn survey_subnetpools(
        &self,
        docker: &DockerView,
        now: chrono::DateTime<chrono::Utc>,
        min_age: Duration,
    ) -> Result<(usize, Vec<Finding>)> {
        let description = mapping::pool_description(&self.config.host_id);
        let made = self
            .neutron
            .subnetpools()
            .list(&Filters::new().eq("description", description.as_str()))
            .await
            .map_err(neutron_err(
                "listing the subnetpools kuryr made on this host",
            ))?;
        let kuryr_prefix = format!("{}-", self.config.subnetpool_name_prefix);
        let candidates: Vec<&SubnetPool> = made
            .iter()
            .filter(|p| {
                p.name.starts_with(&kuryr_prefix)
                    && !p
                        .tags
                        .iter()
                        .any(|t| t == EXISTING_POOL_TAG || mapping::is_uuid(t))
                    && old_enough_at(
                        p.updated_at.as_deref().or(p.created_at.as_deref()),
                        now,
                        min_age,
                    )
                    && p.prefixes.iter().all(|x| {
                        x.parse::<IpNet>()
                            .is_ok_and(|n| !docker.pool_cidrs.contains(&n.trunc()))
                    })
            })
            .collect();
        let mut orphans = self
            .unnamed_pinning_pools(&made, &kuryr_prefix, now, min_age)
            .await?;
        if candidates.is_empty() {
            return Ok((made.len(), orphans));
        }
        let ids: Vec<&str> = candidates.iter().map(|p| p.id.as_str()).collect();
        let from_pools = ids
            .iter()
            .fold(Filters::new(), |f, id| f.eq("subnetpool_id", *id))
            .fields(["id", "subnetpool_id"]);
        let subnets = self.neutron.subnets();
        let mut used: HashSet<String> = subnets
            .list(&from_pools)
            .await
            .map_err(neutron_err(
                "listing the subnets of this host's subnetpools",
            ))?
            .into_iter()
            .filter_map(|s| s.subnetpool_id)
            .collect();
        // Adopted subnets carry the id of the pool IPAM answered with.
        let tagged = subnets
            .list(
                &Filters::new()
                    .tags_any(ids.iter().copied())
                    .fields(["id", "tags"]),
            )
            .await
            .map_err(neutron_err(
                "listing the subnets tagged with this host's subnetpools",
            ))?;
        used.extend(tagged.into_iter().flat_map(|s| s.tags));
        let unused = candidates
            .into_iter()
            .filter(|p| !used.contains(&p.id))
            .map(|p| Finding {
                kind: OrphanKind::Subnetpool,
                resource: p.id.clone(),
                why: format!(
                    "no subnet uses subnetpool {} ({}) and Docker has no network with its CIDR",
                    p.id, p.name
                ),
                target: Target::Subnetpool(Box::new(p.clone())),
            });
        orphans.extend(unused);
        Ok((made.len(), orphans))
    }

    /// The pools made on this host to pin a subnet (one per control plane) that no subnet
    /// names any more: every Docker network using one tags its subnet with the pool's id,
    /// so one whose subnet is gone, or lost that tag (a ReleasePool cut short between
    /// giving the subnet back and deleting the pool), serves no one. The control plane that
    /// made it may be gone too (a Docker engine wiped with its id), so whichever holds it,
    /// it goes.
    async fn unnamed_pinning_pools(
        &self,
        made: &[SubnetPool],
        kuryr_prefix: &str,
        now: chrono::DateTime<chrono::Utc>,
        min_age: Duration,
    ) -> Result<Vec<Finding>> {
        let pinned: Vec<(&SubnetPool, &str)> = made
            .iter()
            .filter(|p| {
                p.name.starts_with(kuryr_prefix)
                    && !p.tags.iter().any(|t| t == EXISTING_POOL_TAG)
                    && old_enough_at(
                        p.updated_at.as_deref().or(p.created_at.as_deref()),
                        now,
                        min_age,
                    )
            })
            .filter_map(|p| {
                let subnet = p.tags.iter().find(|t| mapping::is_uuid(t))?;
                Some((p, subnet.as_str()))
            })
            .collect();
        if pinned.is_empty() {
            return Ok(Vec::new());
        }
        let ids = pinned
            .iter()
            .fold(Filters::new(), |f, (_, s)| f.eq("id", *s))
            .fields(["id", "tags"]);
        let subnets: HashMap<String, Vec<String>> = self
            .neutron
            .subnets()
            .list(&ids)
            .await
            .map_err(neutron_err("looking up the subnets this host's pools pin"))?
            .into_iter()
            .map(|s| (s.id, s.tags))
            .collect();
        Ok(pinned
            .into_iter()
            .filter_map(|(p, subnet)| {
                let why = match subnets.get(subnet) {
                    None => format!(
                        "subnet {subnet}, which subnetpool {} ({}) was made for, is gone",
                        p.id, p.name
                    ),
                    Some(tags) if !tags.contains(&p.id) => format!(
                        "subnet {subnet} no longer names subnetpool {} ({}), which was made \
                         for it: no Docker network uses the pool",
                        p.id, p.name
                    ),
                    Some(_) => return None,
                };
                Some(Finding {
                    kind: OrphanKind::Subnetpool,
                    resource: p.id.clone(),
                    why,
                    target: Target::Subnetpool(Box::new(p.clone())),
                })
            })
            .collect())
    }

    /// Interfaces kuryr plugged whose Neutron port is gone or holds another endpoint.
    async fn survey_interfaces(
        &self,
        ports: &HashMap<String, Port>,
        found: &[Finding],
    ) -> Result<(usize, Vec<Finding>)> {
        let binder = self.binder().await?;
        let plugged = binder.ovsdb.kuryr_interfaces().await.map_err(host_err(
            "listing the interfaces kuryr plugged into Open vSwitch",
        ))?;
        let handled: HashSet<&str> = found.iter().map(|f| f.resource.as_str()).collect();
        let mut orphans = Vec::new();
        for iface in &plugged {
            if iface.port_id.is_empty() || handled.contains(iface.port_id.as_str()) {
                continue;
            }
            let port = match ports.get(&iface.port_id) {
                Some(p) => Some(p.clone()),
                None => self
                    .neutron
                    .ports()
                    .get_opt(&iface.port_id)
                    .await
                    .map_err(neutron_err(format!("reading port {}", iface.port_id)))?,
            };
            let why = match port {
                None => format!("Neutron has no port {}", iface.port_id),
                // A free pool port's interface holds no endpoint; the pools keep it.
                Some(_) if iface.endpoint_id.is_empty() => continue,
                Some(p) if mapping::id_of_tags(&p.tags).as_deref() == Some(&iface.endpoint_id) => {
                    continue
                }
                Some(p) if p.tags.iter().any(|t| crate::pool::is_pool_tag(t)) => continue,
                Some(_) => format!(
                    "port {} no longer holds endpoint {}",
                    iface.port_id, iface.endpoint_id
                ),
            };
            orphans.push(Finding {
                kind: OrphanKind::HostInterface,
                resource: iface.name.clone(),
                why,
                target: Target::Interface(iface.clone()),
            });
        }
        Ok((plugged.len(), orphans))
    }
}

/// Whether a resource last changed at `changed` (RFC 3339; unknown counts as old) is at
/// least `min_age` old at `now`.
fn old_enough_at(
    changed: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
    min_age: Duration,
) -> bool {
    changed
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .is_none_or(|t| {
            (now - t.with_timezone(&chrono::Utc))
                .to_std()
                .is_ok_and(|age| age >= min_age)
        })
}

/// Whether one kuryr port of this host is an orphan, by Docker's view.
fn judge_port(port: &Port, docker: Option<&DockerView>, local: bool) -> Option<Finding> {
    let docker = docker?;
    let finding = |kind, why| Finding {
        kind,
        resource: port.id.clone(),
        why,
        target: Target::Port(Box::new(port.clone())),
    };
    if let Some(endpoint) = mapping::id_of_tags(&port.tags) {
        return (!docker.endpoints.contains(&endpoint)).then(|| {
            finding(
                OrphanKind::EndpointPort,
                format!("Docker has no endpoint {endpoint}"),
            )
        });
    }
    // An address port: made by RequestAddress, or a user's port it adopted, not yet bound.
    let address_port = ((port.name == UNBOUND_PORT_NAME
        && port.tags.iter().any(|t| t == DEVICE_OWNER))
        || port.tags.iter().any(|t| t == EXISTING_PORT_TAG))
        && port.binding_host_id.is_empty();
    if !local || !address_port {
        return None;
    }
    let addresses: Vec<IpAddr> = port
        .fixed_ips
        .iter()
        .filter_map(|ip| ip.ip_address.parse().ok())
        .collect();
    if addresses.iter().any(|a| docker.addresses.contains(a)) {
        return None;
    }
    let shown: Vec<String> = addresses.iter().map(ToString::to_string).collect();
    Some(finding(
        OrphanKind::AddressPort,
        format!("no Docker endpoint holds {}", shown.join(", ")),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(name: &str, tags: &[&str], ip: &str) -> Port {
        serde_json::from_value(serde_json::json!({
            "id": "p1", "name": name, "network_id": "n1",
            "tags": tags, "fixed_ips": [{"subnet_id": "s1", "ip_address": ip}],
            "revision_number": 3
        }))
        .unwrap()
    }

    const EP: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn ports_are_judged_by_dockers_view() {
        let ep_tags = mapping::id_tags(&EP.parse().unwrap());
        let ep_tags: Vec<&str> = ep_tags.iter().map(String::as_str).collect();
        let bound = port("x", &ep_tags, "10.0.0.5");
        let address = port(UNBOUND_PORT_NAME, &[DEVICE_OWNER], "10.0.0.6");
        let mut docker = DockerView::default();
        assert!(
            judge_port(&bound, None, true).is_none(),
            "no view, no judgement"
        );
        let f = judge_port(&bound, Some(&docker), true).unwrap();
        assert_eq!(f.kind, OrphanKind::EndpointPort);
        assert!(f.why.contains(EP), "{}", f.why);
        let f = judge_port(&address, Some(&docker), true).unwrap();
        assert_eq!(f.kind, OrphanKind::AddressPort);
        assert!(f.why.contains("10.0.0.6"), "{}", f.why);
        assert!(
            judge_port(&address, Some(&docker), false).is_none(),
            "a swarm manager's addresses"
        );
        docker.endpoints.insert(EP.into());
        docker.addresses.insert("10.0.0.6".parse().unwrap());
        assert!(judge_port(&bound, Some(&docker), true).is_none());
        assert!(judge_port(&address, Some(&docker), true).is_none());
    }

    #[test]
    fn seen_twice_means_unchanged() {
        let docker = DockerView::default();
        let f = judge_port(
            &port(UNBOUND_PORT_NAME, &[DEVICE_OWNER], "10.0.0.6"),
            Some(&docker),
            true,
        )
        .unwrap();
        let first = Survey {
            findings: vec![f.clone()],
            ..Survey::default()
        };
        assert_eq!(first.confirmed_by(&first).len(), 1);
        let mut changed = f;
        if let Target::Port(p) = &mut changed.target {
            p.revision_number += 1;
        }
        let second = Survey {
            findings: vec![changed],
            ..Survey::default()
        };
        assert!(second.confirmed_by(&first).is_empty());
        assert!(first.confirmed_by(&Survey::default()).is_empty());
    }
}
