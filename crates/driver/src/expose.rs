//! `--expose` and `-p`: ProgramExternalConnectivity forwards the published ports from a
//! floating IP ([`crate::publish`]) and opens the container's exposed and published ports
//! with one security group per endpoint (one ingress rule per protocol and contiguous port
//! range), added next to the port's other groups; RevokeExternalConnectivity removes both.
//! The port is found by its endpoint tags (upstream looked it up by name and so never found
//! it).

use std::collections::BTreeMap;

use kuryr_libnetwork::network::{EndpointRequest, ExposedPort, ExternalConnectivityRequest};
use kuryr_libnetwork::plugin::Empty;
use kuryr_openstack::neutron::{
    Filters, Port, PortSpec, SecurityGroup, SecurityGroupRuleSpec, SecurityGroupSpec,
};

use crate::error::{neutron_err, DriverError, Result};
use crate::mapping::{exposed_ports_group_name, EXPOSED_PORTS_GROUP_DESCRIPTION};
use crate::{publish, Driver};

/// One ingress rule: a protocol and a port range (none for ICMP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub protocol: &'static str,
    pub ports: Option<(u16, u16)>,
}

impl Driver {
    pub(crate) async fn program_external(
        &self,
        req: &ExternalConnectivityRequest,
    ) -> Result<Empty> {
        if !self.config.process_external_connectivity {
            return Ok(Empty {});
        }
        let mut exposed = req.options.exposed_ports().map_err(DriverError::invalid)?;
        let port_map = req.options.port_map().map_err(DriverError::invalid)?;
        let wanted = publish::wanted(&port_map)?;
        // A published port must not be blocked by the port's own groups.
        exposed.extend(port_map.iter().map(|b| ExposedPort {
            proto: b.proto,
            port: b.port,
        }));
        let rules = rules_for(&exposed)?;
        if rules.is_empty() {
            return Ok(Empty {});
        }
        let port = self
            .tagged_port_of(&req.endpoint_id)
            .await?
            .ok_or_else(|| {
                DriverError::not_found(format!(
                    "no Neutron port carries the tags of endpoint {}; CreateEndpoint did not \
                     complete",
                    req.endpoint_id.as_str()
                ))
            })?;
        // Before anything is made: RevokeExternalConnectivity then looks it up.
        self.pooled_exposed(req.endpoint_id.as_str());
        self.ledger.set_exposed(req.endpoint_id.as_str());
        if !wanted.is_empty() {
            let published = self
                .publish(&req.network_id, &req.endpoint_id, &port, &wanted)
                .await?;
            for p in &published {
                tracing::info!(endpoint = %req.endpoint_id.as_str(), "published {p}");
            }
        }
        let opened = self.open_exposed_ports(&port, &rules).await;
        if opened.is_err() && !wanted.is_empty() {
            if let Err(e) = self.unpublish(&req.network_id, &port.id).await {
                tracing::warn!(endpoint = %req.endpoint_id.as_str(), "rolling back -p: {}", e.report());
            }
        }
        opened.map(|_| Empty {})
    }

    /// One security group for the exposed and published ports, next to the port's others.
    async fn open_exposed_ports(&self, port: &Port, rules: &[Rule]) -> Result<()> {
        let name = exposed_ports_group_name(&port.id);
        // A retried call finds its group: replace it rather than add a second one.
        let stale = self.exposed_groups(&port.id).await?;
        let group = self
            .neutron
            .security_groups()
            .create(&SecurityGroupSpec {
                name: Some(name.clone()),
                description: Some(EXPOSED_PORTS_GROUP_DESCRIPTION.into()),
                ..Default::default()
            })
            .await
            .map_err(neutron_err(format_args!("creating security group {name}")))?;
        let result = async {
            let specs: Vec<SecurityGroupRuleSpec> = rules
                .iter()
                .flat_map(|r| {
                    ["IPv4", "IPv6"].map(|ethertype| SecurityGroupRuleSpec {
                        security_group_id: Some(group.id.clone()),
                        direction: Some("ingress".into()),
                        ethertype: Some(ethertype.into()),
                        protocol: Some(r.protocol.into()),
                        port_range_min: r.ports.map(|p| u32::from(p.0)),
                        port_range_max: r.ports.map(|p| u32::from(p.1)),
                        ..Default::default()
                    })
                })
                .collect();
            self.neutron
                .security_group_rules()
                .create_bulk(&specs)
                .await
                .map_err(neutron_err(format_args!("adding the rules of {name}")))?;
            let mut groups: Vec<String> = port
                .security_groups
                .iter()
                .filter(|g| !stale.iter().any(|s| &s.id == *g))
                .cloned()
                .collect();
            groups.push(group.id.clone());
            self.neutron
                .ports()
                .update(
                    &port.id,
                    &PortSpec {
                        security_groups: Some(groups),
                        ..Default::default()
                    },
                )
                .await
                .map_err(neutron_err(format_args!(
                    "adding security group {name} to port {}",
                    port.id
                )))
        }
        .await;
        match result {
            Ok(_) => {
                for old in stale {
                    let _ = self.neutron.security_groups().delete(&old.id).await;
                }
                Ok(())
            }
            Err(e) => {
                if let Err(cleanup) = self.neutron.security_groups().delete(&group.id).await {
                    tracing::warn!(group = %group.id, "rolling back --expose: {cleanup}");
                }
                Err(e)
            }
        }
    }

    pub(crate) async fn revoke_external(&self, req: &EndpointRequest) -> Result<Empty> {
        if !self.config.process_external_connectivity {
            return Ok(Empty {});
        }
        // A pool port this daemon handed out knows whether it got a group.
        if let Some(held) = self
            .pools
            .as_ref()
            .and_then(|p| p.held_by_endpoint(req.endpoint_id.as_str()))
        {
            if !held.exposed {
                return Ok(Empty {});
            }
        }
        // So does a port this daemon bound on the usual path.
        if let Some(entry) = self.ledger.by_endpoint(req.endpoint_id.as_str()) {
            if !entry.exposed {
                return Ok(Empty {});
            }
        }
        let Some(port) = self.tagged_port_of(&req.endpoint_id).await? else {
            return Ok(Empty {});
        };
        self.unpublish(&req.network_id, &port.id).await?;
        let groups = self.exposed_groups(&port.id).await?;
        if groups.is_empty() {
            return Ok(Empty {});
        }
        let remaining: Vec<String> = port
            .security_groups
            .iter()
            .filter(|g| !groups.iter().any(|s| &s.id == *g))
            .cloned()
            .collect();
        if remaining.len() != port.security_groups.len() {
            self.neutron
                .ports()
                .update(
                    &port.id,
                    &PortSpec {
                        security_groups: Some(remaining),
                        ..Default::default()
                    },
                )
                .await
                .map_err(neutron_err(format_args!(
                    "removing the exposed-ports group from port {}",
                    port.id
                )))?;
        }
        for group in groups {
            match self.neutron.security_groups().delete(&group.id).await {
                Ok(_) => {}
                Err(e) => {
                    return Err(DriverError::neutron(
                        format!("deleting security group {}", group.id),
                        &e,
                    ))
                }
            }
        }
        Ok(Empty {})
    }

    /// The exposed-ports groups of a port (normally at most one).
    async fn exposed_groups(&self, port_id: &str) -> Result<Vec<SecurityGroup>> {
        let name = exposed_ports_group_name(port_id);
        self.neutron
            .security_groups()
            .list(&Filters::new().eq("name", name.as_str()))
            .await
            .map_err(neutron_err(format_args!(
                "looking up security group {name}"
            )))
    }
}

/// Group exposed ports by protocol and merge consecutive ports into ranges.
pub fn rules_for(exposed: &[ExposedPort]) -> Result<Vec<Rule>> {
    let mut by_protocol: BTreeMap<&'static str, Vec<u16>> = BTreeMap::new();
    for p in exposed {
        let protocol = match p.proto {
            1 => "icmp",
            6 => "tcp",
            17 => "udp",
            132 => "sctp",
            other => {
                return Err(DriverError::invalid(format!(
                    "exposed port {} has protocol number {other}; kuryr opens tcp (6), udp \
                     (17), sctp (132) and icmp (1)",
                    p.port
                )))
            }
        };
        by_protocol.entry(protocol).or_default().push(p.port);
    }
    let mut rules = Vec::new();
    for (protocol, mut ports) in by_protocol {
        if protocol == "icmp" {
            rules.push(Rule {
                protocol,
                ports: None,
            });
            continue;
        }
        ports.sort_unstable();
        ports.dedup();
        let mut range: Option<(u16, u16)> = None;
        for port in ports {
            range = match range {
                Some((lo, hi)) if u32::from(port) == u32::from(hi) + 1 => Some((lo, port)),
                Some(done) => {
                    rules.push(Rule {
                        protocol,
                        ports: Some(done),
                    });
                    Some((port, port))
                }
                None => Some((port, port)),
            };
        }
        rules.extend(range.map(|r| Rule {
            protocol,
            ports: Some(r),
        }));
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(proto: u8, port: u16) -> ExposedPort {
        ExposedPort { proto, port }
    }

    #[test]
    fn merges_consecutive_ports_per_protocol() {
        let exposed: Vec<ExposedPort> = (1234..=1238)
            .map(|n| p(17, n))
            .chain([p(6, 80), p(6, 443), p(6, 81), p(6, 80)])
            .collect();
        assert_eq!(
            rules_for(&exposed).unwrap(),
            vec![
                Rule {
                    protocol: "tcp",
                    ports: Some((80, 81))
                },
                Rule {
                    protocol: "tcp",
                    ports: Some((443, 443))
                },
                Rule {
                    protocol: "udp",
                    ports: Some((1234, 1238))
                },
            ]
        );
    }

    #[test]
    fn refuses_unknown_protocols() {
        let err = rules_for(&[p(47, 0)]).unwrap_err();
        assert!(err.report().contains("protocol number 47"));
    }
}
