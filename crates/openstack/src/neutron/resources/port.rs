use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use serde_with::skip_serializing_none;

use super::{lenient, resource, Subport};

/// An address of a port; on create either field may be left empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixedIp {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subnet_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ip_address: String,
}

/// An extra IP (and MAC) a port may send from (`allowed_address_pairs`).
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressPair {
    pub ip_address: String,
    #[serde(default)]
    pub mac_address: Option<String>,
}

/// The trunk a port is the parent of (`trunk-details` extension).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct TrunkDetails {
    pub trunk_id: String,
    pub sub_ports: Vec<Subport>,
}

/// A Neutron port.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Port {
    pub id: String,
    #[serde(deserialize_with = "lenient::null_default")]
    pub name: String,
    #[serde(deserialize_with = "lenient::null_default")]
    pub description: String,
    pub network_id: String,
    pub project_id: String,
    pub mac_address: String,
    pub admin_state_up: bool,
    /// `ACTIVE`, `DOWN`, `BUILD` or `ERROR`.
    pub status: String,
    pub device_id: String,
    pub device_owner: String,
    pub fixed_ips: Vec<FixedIp>,
    pub security_groups: Vec<String>,
    pub allowed_address_pairs: Vec<AddressPair>,
    pub port_security_enabled: Option<bool>,
    #[serde(rename = "binding:host_id", deserialize_with = "lenient::null_default")]
    pub binding_host_id: String,
    /// `ovs`, `bridge`, `unbound`, `binding_failed`, ...
    #[serde(
        rename = "binding:vif_type",
        deserialize_with = "lenient::null_default"
    )]
    pub binding_vif_type: String,
    #[serde(
        rename = "binding:vif_details",
        deserialize_with = "lenient::null_default"
    )]
    pub binding_vif_details: Map<String, Value>,
    #[serde(
        rename = "binding:vnic_type",
        deserialize_with = "lenient::null_default"
    )]
    pub binding_vnic_type: String,
    #[serde(rename = "binding:profile", deserialize_with = "lenient::null_default")]
    pub binding_profile: Map<String, Value>,
    pub trunk_details: Option<TrunkDetails>,
    pub tags: Vec<String>,
    pub revision_number: u64,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

/// Fields of a port to create or change (`network_id` only on create).
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PortSpec {
    pub name: Option<String>,
    pub description: Option<String>,
    pub network_id: Option<String>,
    pub project_id: Option<String>,
    pub mac_address: Option<String>,
    pub admin_state_up: Option<bool>,
    pub device_id: Option<String>,
    pub device_owner: Option<String>,
    pub fixed_ips: Option<Vec<FixedIp>>,
    pub security_groups: Option<Vec<String>>,
    pub allowed_address_pairs: Option<Vec<AddressPair>>,
    pub port_security_enabled: Option<bool>,
    #[serde(rename = "binding:host_id")]
    pub binding_host_id: Option<String>,
    #[serde(rename = "binding:vnic_type")]
    pub binding_vnic_type: Option<String>,
    #[serde(rename = "binding:profile")]
    pub binding_profile: Option<Map<String, Value>>,
    /// Tags set at creation (needs the `tag-creation` / bulk-tagging extensions).
    pub tags: Option<Vec<String>>,
}

resource!(Port, PortSpec, "port", "ports", "ports", taggable);
