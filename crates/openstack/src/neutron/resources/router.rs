use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::{lenient, resource, FixedIp, HostRoute};

/// A router's uplink to an external network.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalGatewayInfo {
    pub network_id: String,
    #[serde(default)]
    pub enable_snat: Option<bool>,
    #[serde(default)]
    pub external_fixed_ips: Option<Vec<FixedIp>>,
}

/// A Neutron router.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Router {
    pub id: String,
    #[serde(deserialize_with = "lenient::null_default")]
    pub name: String,
    #[serde(deserialize_with = "lenient::null_default")]
    pub description: String,
    pub project_id: String,
    pub admin_state_up: bool,
    pub status: String,
    pub external_gateway_info: Option<ExternalGatewayInfo>,
    pub routes: Vec<HostRoute>,
    pub distributed: Option<bool>,
    pub ha: Option<bool>,
    pub tags: Vec<String>,
    pub revision_number: u64,
}

/// Fields of a router to create or change.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RouterSpec {
    pub name: Option<String>,
    pub description: Option<String>,
    pub project_id: Option<String>,
    pub admin_state_up: Option<bool>,
    /// `Some(None)` sends `null`: remove the gateway.
    pub external_gateway_info: Option<Option<ExternalGatewayInfo>>,
    pub routes: Option<Vec<HostRoute>>,
}

/// What to attach to or detach from a router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouterInterface {
    /// A new port on the subnet's gateway address.
    Subnet(String),
    /// An existing port.
    Port(String),
}

/// What Neutron answers to an interface add or remove.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RouterInterfaceInfo {
    /// The router's id.
    pub id: String,
    pub port_id: String,
    pub subnet_id: String,
    pub subnet_ids: Vec<String>,
    pub network_id: String,
    pub project_id: String,
}

resource!(Router, RouterSpec, "router", "routers", "routers", taggable);
