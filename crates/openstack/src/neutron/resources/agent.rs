use serde::Deserialize;

use super::lenient;

/// A Neutron agent (`GET /v2.0/agents`): which host runs which agent, and whether it
/// reported in time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Agent {
    pub id: String,
    /// `Open vSwitch agent`, `Linux bridge agent`, `OVN Controller agent`, `L3 agent`...
    pub agent_type: String,
    pub binary: String,
    pub host: String,
    #[serde(deserialize_with = "lenient::null_default")]
    pub alive: bool,
    #[serde(deserialize_with = "lenient::null_default")]
    pub admin_state_up: bool,
}
