//! `nested` mode (macvlan, ipvlan): the container's addresses become allowed address pairs of
//! the VM's port, so that Neutron's port security lets them out of (and into) the VM.
//!
//! The pairs are one list on the VM's port that every container of the VM changes: each
//! change is a read-modify-write sent with `If-Match: revision_number`, re-read and retried
//! when someone else changed the port first, so concurrent changes never lose a pair.

use std::net::IpAddr;
use std::time::Duration;

use kuryr_openstack::neutron::{AddressPair, Port, PortSpec};

use super::VmPort;
use crate::error::{neutron_err, DriverError, Result};
use crate::Driver;

/// How many read-modify-write rounds before giving up on a port that keeps changing.
const ATTEMPTS: u32 = 10;

impl Driver {
    /// Let the VM's port send and receive from `port`'s addresses with `mac` (the container's
    /// MAC for macvlan, the VM's for ipvlan). A pair for one of the addresses with another
    /// MAC is stale (Neutron gave the address to this port) and is replaced.
    pub(super) async fn allow_addresses(&self, vm: &VmPort, port: &Port, mac: &str) -> Result<()> {
        let ips = addresses(port);
        let wanted: Vec<AddressPair> = ips
            .iter()
            .map(|ip| AddressPair {
                ip_address: ip.to_string(),
                mac_address: Some(mac.to_owned()),
            })
            .collect();
        self.change_pairs(vm, |current| {
            let mut pairs: Vec<AddressPair> = current
                .iter()
                .filter(|p| !pair_ip(p).is_some_and(|ip| ips.contains(&ip)) || wanted.contains(p))
                .cloned()
                .collect();
            pairs.extend(wanted.iter().filter(|w| !current.contains(w)).cloned());
            pairs
        })
        .await
    }

    /// Remove the pairs of `port`'s addresses from the VM's port (absent ones are fine).
    pub(super) async fn disallow_addresses(&self, vm: &VmPort, port: &Port) -> Result<()> {
        let ips = addresses(port);
        self.change_pairs(vm, |current| {
            current
                .iter()
                .filter(|p| !pair_ip(p).is_some_and(|ip| ips.contains(&ip)))
                .cloned()
                .collect()
        })
        .await
    }

    /// Read the VM's pairs, compute the new list, write it if it differs, only if the port is
    /// still at the revision read; otherwise start over.
    async fn change_pairs(
        &self,
        vm: &VmPort,
        change: impl Fn(&[AddressPair]) -> Vec<AddressPair>,
    ) -> Result<()> {
        for attempt in 1..=ATTEMPTS {
            let port = self.vm_port_now(vm).await?;
            if port.port_security_enabled == Some(false) {
                // Nothing is filtered on the VM's port: no pair is needed (nor accepted).
                return Ok(());
            }
            let pairs = change(&port.allowed_address_pairs);
            if pairs == port.allowed_address_pairs {
                return Ok(());
            }
            let spec = PortSpec {
                allowed_address_pairs: Some(pairs),
                ..Default::default()
            };
            match self
                .neutron
                .ports()
                .update_if_revision(&vm.id, &spec, port.revision_number)
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if e.is_precondition_failed() && attempt < ATTEMPTS => {
                    // Spread the racers out a little before they read again.
                    tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
                }
                Err(e) => {
                    return Err(neutron_err(format_args!(
                        "updating the allowed address pairs of the VM's port {}",
                        vm.id
                    ))(e))
                }
            }
        }
        Err(DriverError::unavailable(format!(
            "the VM's port {} kept changing while kuryr updated its allowed address pairs \
             ({ATTEMPTS} attempts); retry",
            vm.id
        )))
    }
}

/// The port's addresses.
fn addresses(port: &Port) -> Vec<IpAddr> {
    port.fixed_ips
        .iter()
        .filter_map(|f| f.ip_address.parse().ok())
        .collect()
}

/// The single address a pair allows (`10.0.0.5` or `10.0.0.5/32`); `None` for a range.
fn pair_ip(pair: &AddressPair) -> Option<IpAddr> {
    if let Ok(ip) = pair.ip_address.parse() {
        return Some(ip);
    }
    let net: ipnet::IpNet = pair.ip_address.parse().ok()?;
    (net.prefix_len() == net.max_prefix_len()).then(|| net.addr())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(ip: &str, mac: Option<&str>) -> AddressPair {
        AddressPair {
            ip_address: ip.into(),
            mac_address: mac.map(str::to_owned),
        }
    }

    #[test]
    fn single_addresses_and_ranges() {
        assert_eq!(pair_ip(&pair("10.0.0.5", None)), "10.0.0.5".parse().ok());
        assert_eq!(pair_ip(&pair("10.0.0.5/32", None)), "10.0.0.5".parse().ok());
        assert_eq!(pair_ip(&pair("fd00::5/128", None)), "fd00::5".parse().ok());
        assert_eq!(pair_ip(&pair("10.0.0.0/24", None)), None);
        assert_eq!(pair_ip(&pair("junk", None)), None);
    }
}
