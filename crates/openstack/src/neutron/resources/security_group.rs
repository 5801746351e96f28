use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::{lenient, resource};

/// A Neutron security group with its rules.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SecurityGroup {
    pub id: String,
    #[serde(deserialize_with = "lenient::null_default")]
    pub name: String,
    #[serde(deserialize_with = "lenient::null_default")]
    pub description: String,
    pub project_id: String,
    pub stateful: Option<bool>,
    pub security_group_rules: Vec<SecurityGroupRule>,
    pub tags: Vec<String>,
    pub revision_number: u64,
}

/// Fields of a security group to create or change.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SecurityGroupSpec {
    pub name: Option<String>,
    pub description: Option<String>,
    pub project_id: Option<String>,
    pub stateful: Option<bool>,
}

/// One rule of a security group.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SecurityGroupRule {
    pub id: String,
    pub security_group_id: String,
    pub project_id: String,
    /// `ingress` or `egress`.
    pub direction: String,
    /// `IPv4` or `IPv6`.
    pub ethertype: String,
    pub protocol: Option<String>,
    #[serde(deserialize_with = "lenient::opt_u32")]
    pub port_range_min: Option<u32>,
    #[serde(deserialize_with = "lenient::opt_u32")]
    pub port_range_max: Option<u32>,
    pub remote_ip_prefix: Option<String>,
    pub remote_group_id: Option<String>,
    #[serde(deserialize_with = "lenient::null_default")]
    pub description: String,
    pub revision_number: u64,
}

/// A rule to create (rules are not updated, only created and deleted).
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SecurityGroupRuleSpec {
    pub security_group_id: Option<String>,
    pub project_id: Option<String>,
    pub direction: Option<String>,
    pub ethertype: Option<String>,
    pub protocol: Option<String>,
    pub port_range_min: Option<u32>,
    pub port_range_max: Option<u32>,
    pub remote_ip_prefix: Option<String>,
    pub remote_group_id: Option<String>,
    pub description: Option<String>,
}

resource!(
    SecurityGroup,
    SecurityGroupSpec,
    "security_group",
    "security_groups",
    "security-groups",
    taggable
);
resource!(
    SecurityGroupRule,
    SecurityGroupRuleSpec,
    "security_group_rule",
    "security_group_rules",
    "security-group-rules"
);
