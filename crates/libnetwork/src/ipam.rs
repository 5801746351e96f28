//! The IpamDriver protocol: requests and answers of `/IpamDriver.*` (moby/libnetwork
//! `ipams/remote/api`).

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::network::Options;
use crate::values::{optional, PoolId};

/// `/IpamDriver.GetCapabilities` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// Docker then picks a MAC before RequestAddress and passes it as an option.
    #[serde(rename = "RequiresMACAddress")]
    pub requires_mac_address: bool,
    #[serde(
        rename = "RequiresRequestReplay",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub requires_request_replay: bool,
}

/// `/IpamDriver.GetDefaultAddressSpaces` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DefaultAddressSpaces {
    #[serde(rename = "LocalDefaultAddressSpace")]
    pub local: String,
    #[serde(rename = "GlobalDefaultAddressSpace")]
    pub global: String,
}

/// `/IpamDriver.RequestPool`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RequestPoolRequest {
    #[serde(rename = "AddressSpace", default)]
    pub address_space: String,
    /// `None`: the driver picks (the default subnetpools).
    #[serde(rename = "Pool", default, deserialize_with = "optional::cidr")]
    pub pool: Option<IpNet>,
    /// `--ip-range`: the part of `Pool` to allocate from.
    #[serde(rename = "SubPool", default, deserialize_with = "optional::cidr")]
    pub sub_pool: Option<IpNet>,
    /// `--ipam-opt` key/values.
    #[serde(rename = "Options", default)]
    pub options: Options,
    #[serde(rename = "V6", default)]
    pub v6: bool,
}

/// `/IpamDriver.RequestPool` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestPoolResponse {
    #[serde(rename = "PoolID")]
    pub pool_id: PoolId,
    #[serde(rename = "Pool")]
    pub pool: IpNet,
    /// May carry `com.docker.network.gateway` so that Docker needs no gateway RequestAddress.
    #[serde(rename = "Data")]
    pub data: BTreeMap<String, String>,
}

/// `/IpamDriver.ReleasePool`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ReleasePoolRequest {
    #[serde(rename = "PoolID")]
    pub pool_id: PoolId,
}

/// `/IpamDriver.RequestAddress`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RequestAddressRequest {
    #[serde(rename = "PoolID")]
    pub pool_id: PoolId,
    /// A specific address (`--ip`, `--gateway`), or `None` for any.
    #[serde(rename = "Address", default, deserialize_with = "optional::ip")]
    pub address: Option<IpAddr>,
    #[serde(rename = "Options", default)]
    pub options: Options,
}

impl RequestAddressRequest {
    /// Whether Docker asks for the network's gateway rather than a container address.
    pub fn is_gateway(&self) -> bool {
        self.options
            .string(crate::network::keys::REQUEST_ADDRESS_TYPE)
            == Some(crate::network::keys::GATEWAY)
    }

    /// The MAC Docker chose for the endpoint (sent because the driver requires MACs).
    pub fn mac_address(&self) -> Result<Option<crate::values::MacAddress>, String> {
        self.options
            .string(crate::network::keys::MAC_ADDRESS)
            .map(str::parse)
            .transpose()
    }
}

/// `/IpamDriver.RequestAddress` answer: the address with its prefix length.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestAddressResponse {
    #[serde(rename = "Address")]
    pub address: IpNet,
    #[serde(rename = "Data", skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
}

/// `/IpamDriver.ReleaseAddress`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ReleaseAddressRequest {
    #[serde(rename = "PoolID")]
    pub pool_id: PoolId,
    #[serde(rename = "Address", deserialize_with = "optional::ip")]
    pub address: Option<IpAddr>,
}
