//! `/Plugin.Activate` and the answers shared by both subsystems.

use serde::Serialize;

/// `/Plugin.Activate` answer: which subsystems this plugin serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActivateResponse {
    #[serde(rename = "Implements")]
    pub implements: Vec<&'static str>,
}

impl ActivateResponse {
    /// kuryr serves both the network and the IPAM driver from one socket.
    pub fn network_and_ipam() -> Self {
        ActivateResponse {
            implements: vec!["NetworkDriver", "IpamDriver"],
        }
    }
}

/// The empty `{}` answer of calls that return nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Empty {}

/// An error answer. Sent with a non-2xx status, which both subsystems read as an error
/// (the IPAM side ignores `Err` in a 200).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorResponse {
    #[serde(rename = "Err")]
    pub err: String,
}
