use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::{lenient, resource};

/// A range of addresses Neutron may hand out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationPool {
    pub start: String,
    pub end: String,
}

/// A static route pushed to the instances of a subnet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRoute {
    pub destination: String,
    pub nexthop: String,
}

/// A Neutron subnet.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Subnet {
    pub id: String,
    #[serde(deserialize_with = "lenient::null_default")]
    pub name: String,
    #[serde(deserialize_with = "lenient::null_default")]
    pub description: String,
    pub network_id: String,
    pub project_id: String,
    pub ip_version: u8,
    pub cidr: String,
    pub gateway_ip: Option<String>,
    pub enable_dhcp: bool,
    pub allocation_pools: Vec<AllocationPool>,
    pub host_routes: Vec<HostRoute>,
    pub dns_nameservers: Vec<String>,
    pub subnetpool_id: Option<String>,
    pub ipv6_address_mode: Option<String>,
    pub ipv6_ra_mode: Option<String>,
    pub segment_id: Option<String>,
    pub tags: Vec<String>,
    pub revision_number: u64,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

/// Fields of a subnet to create or change.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SubnetSpec {
    pub name: Option<String>,
    pub description: Option<String>,
    pub network_id: Option<String>,
    pub project_id: Option<String>,
    pub ip_version: Option<u8>,
    pub cidr: Option<String>,
    /// `Some(None)` sends `null`: a subnet without gateway.
    pub gateway_ip: Option<Option<String>>,
    pub enable_dhcp: Option<bool>,
    pub allocation_pools: Option<Vec<AllocationPool>>,
    pub host_routes: Option<Vec<HostRoute>>,
    pub dns_nameservers: Option<Vec<String>>,
    pub subnetpool_id: Option<String>,
    /// Prefix length to allocate from the subnetpool (instead of `cidr`).
    pub prefixlen: Option<u8>,
    pub use_default_subnetpool: Option<bool>,
    pub ipv6_address_mode: Option<String>,
    pub ipv6_ra_mode: Option<String>,
    pub segment_id: Option<String>,
}

resource!(Subnet, SubnetSpec, "subnet", "subnets", "subnets", taggable);
