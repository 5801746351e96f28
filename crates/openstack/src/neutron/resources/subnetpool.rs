use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::{lenient, resource};

/// A Neutron subnetpool: prefixes that subnets are carved from.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SubnetPool {
    pub id: String,
    #[serde(deserialize_with = "lenient::null_default")]
    pub name: String,
    #[serde(deserialize_with = "lenient::null_default")]
    pub description: String,
    pub project_id: String,
    pub prefixes: Vec<String>,
    pub ip_version: u8,
    #[serde(deserialize_with = "lenient::opt_u32")]
    pub default_prefixlen: Option<u32>,
    #[serde(deserialize_with = "lenient::opt_u32")]
    pub min_prefixlen: Option<u32>,
    #[serde(deserialize_with = "lenient::opt_u32")]
    pub max_prefixlen: Option<u32>,
    pub shared: bool,
    pub is_default: bool,
    pub address_scope_id: Option<String>,
    pub tags: Vec<String>,
    pub revision_number: u64,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

/// Fields of a subnetpool to create or change.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SubnetPoolSpec {
    pub name: Option<String>,
    pub description: Option<String>,
    pub project_id: Option<String>,
    pub prefixes: Option<Vec<String>>,
    pub default_prefixlen: Option<u32>,
    pub min_prefixlen: Option<u32>,
    pub max_prefixlen: Option<u32>,
    pub shared: Option<bool>,
    pub is_default: Option<bool>,
    pub address_scope_id: Option<String>,
}

resource!(
    SubnetPool,
    SubnetPoolSpec,
    "subnetpool",
    "subnetpools",
    "subnetpools",
    taggable
);
