use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::{lenient, resource};

/// A Neutron floating IP.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct FloatingIp {
    pub id: String,
    pub floating_ip_address: String,
    pub floating_network_id: String,
    pub router_id: Option<String>,
    pub port_id: Option<String>,
    pub fixed_ip_address: Option<String>,
    pub status: String,
    pub project_id: String,
    #[serde(deserialize_with = "lenient::null_default")]
    pub description: String,
    pub tags: Vec<String>,
    pub revision_number: u64,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

/// Fields of a floating IP to create or change.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FloatingIpSpec {
    pub floating_network_id: Option<String>,
    pub floating_ip_address: Option<String>,
    pub subnet_id: Option<String>,
    /// `Some(None)` sends `null`: disassociate.
    pub port_id: Option<Option<String>>,
    pub fixed_ip_address: Option<String>,
    pub description: Option<String>,
    pub project_id: Option<String>,
}

/// A port forwarding of a floating IP (`floating-ip-port-forwarding`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct PortForwarding {
    pub id: String,
    /// `tcp` or `udp`.
    pub protocol: String,
    #[serde(deserialize_with = "lenient::opt_u32")]
    pub external_port: Option<u32>,
    #[serde(deserialize_with = "lenient::opt_u32")]
    pub internal_port: Option<u32>,
    pub internal_ip_address: String,
    pub internal_port_id: String,
    #[serde(deserialize_with = "lenient::null_default")]
    pub description: String,
}

/// Fields of a port forwarding to create or change.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PortForwardingSpec {
    pub protocol: Option<String>,
    pub external_port: Option<u32>,
    pub internal_port: Option<u32>,
    pub internal_ip_address: Option<String>,
    pub internal_port_id: Option<String>,
    pub description: Option<String>,
}

resource!(
    FloatingIp,
    FloatingIpSpec,
    "floatingip",
    "floatingips",
    "floatingips",
    taggable
);
// The collection is nested below a floating IP; `Neutron::port_forwardings` builds the path.
resource!(
    PortForwarding,
    PortForwardingSpec,
    "port_forwarding",
    "port_forwardings",
    "port_forwardings"
);
