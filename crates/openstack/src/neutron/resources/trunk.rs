use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::{lenient, resource};

/// A port attached to a trunk with its VLAN (or other segmentation) id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subport {
    pub port_id: String,
    /// `vlan` (or `inherit`).
    #[serde(default)]
    pub segmentation_type: String,
    #[serde(default)]
    pub segmentation_id: u32,
    #[serde(default, skip_serializing)]
    pub mac_address: Option<String>,
}

/// A Neutron trunk: a parent port that carries subports as VLANs.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Trunk {
    pub id: String,
    #[serde(deserialize_with = "lenient::null_default")]
    pub name: String,
    #[serde(deserialize_with = "lenient::null_default")]
    pub description: String,
    pub port_id: String,
    pub project_id: String,
    pub admin_state_up: bool,
    pub status: String,
    pub sub_ports: Vec<Subport>,
    pub tags: Vec<String>,
    pub revision_number: u64,
}

/// Fields of a trunk to create or change.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TrunkSpec {
    pub name: Option<String>,
    pub description: Option<String>,
    pub port_id: Option<String>,
    pub project_id: Option<String>,
    pub admin_state_up: Option<bool>,
    pub sub_ports: Option<Vec<Subport>>,
}

resource!(Trunk, TrunkSpec, "trunk", "trunks", "trunks", taggable);
