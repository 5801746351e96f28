use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::{lenient, resource};

/// A Neutron network.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Network {
    pub id: String,
    #[serde(deserialize_with = "lenient::null_default")]
    pub name: String,
    #[serde(deserialize_with = "lenient::null_default")]
    pub description: String,
    pub project_id: String,
    pub admin_state_up: bool,
    pub status: String,
    pub shared: bool,
    pub subnets: Vec<String>,
    pub mtu: Option<u32>,
    #[serde(rename = "router:external")]
    pub router_external: bool,
    pub port_security_enabled: Option<bool>,
    #[serde(rename = "provider:network_type")]
    pub network_type: Option<String>,
    #[serde(rename = "provider:physical_network")]
    pub physical_network: Option<String>,
    #[serde(
        rename = "provider:segmentation_id",
        deserialize_with = "lenient::opt_u32"
    )]
    pub segmentation_id: Option<u32>,
    pub availability_zones: Vec<String>,
    pub tags: Vec<String>,
    pub revision_number: u64,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

/// Fields of a network to create or change.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NetworkSpec {
    pub name: Option<String>,
    pub description: Option<String>,
    pub project_id: Option<String>,
    pub admin_state_up: Option<bool>,
    pub shared: Option<bool>,
    pub mtu: Option<u32>,
    #[serde(rename = "router:external")]
    pub router_external: Option<bool>,
    pub port_security_enabled: Option<bool>,
    #[serde(rename = "provider:network_type")]
    pub network_type: Option<String>,
    #[serde(rename = "provider:physical_network")]
    pub physical_network: Option<String>,
    #[serde(rename = "provider:segmentation_id")]
    pub segmentation_id: Option<u32>,
}

resource!(
    Network,
    NetworkSpec,
    "network",
    "networks",
    "networks",
    taggable
);
