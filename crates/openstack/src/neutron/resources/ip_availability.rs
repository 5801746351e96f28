use serde::Deserialize;

/// How many addresses a subnet has and uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct SubnetIpAvailability {
    pub subnet_id: String,
    pub subnet_name: String,
    pub cidr: String,
    pub ip_version: u8,
    /// IPv6 subnets have more than 2^64 addresses.
    pub total_ips: u128,
    pub used_ips: u128,
}

/// How many addresses a network has and uses (`network-ip-availability`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct NetworkIpAvailability {
    pub network_id: String,
    pub network_name: String,
    pub project_id: String,
    pub total_ips: u128,
    pub used_ips: u128,
    pub subnet_ip_availability: Vec<SubnetIpAvailability>,
}
