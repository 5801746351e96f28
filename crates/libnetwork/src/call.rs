//! From an HTTP request (path and body) to a typed [`Call`], validating everything first:
//! an unknown path is a 404, a body that is not valid JSON, lacks a field or has a malformed
//! value is a 400 whose message names the field (`IPv4Data[0].Pool: ...`) and what it should
//! look like.

use serde::de::DeserializeOwned;

use crate::ipam::{
    ReleaseAddressRequest, ReleasePoolRequest, RequestAddressRequest, RequestPoolRequest,
};
use crate::network::{
    AllocateNetworkRequest, CreateEndpointRequest, CreateNetworkRequest, DiscoveryRequest,
    EndpointRequest, ExternalConnectivityRequest, JoinRequest, NetworkRequest,
};

/// Bodies larger than this are refused before parsing (Docker's are a few hundred bytes).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// One plugin call, validated.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    Activate,
    NetworkCapabilities,
    CreateNetwork(CreateNetworkRequest),
    DeleteNetwork(NetworkRequest),
    AllocateNetwork(AllocateNetworkRequest),
    FreeNetwork(NetworkRequest),
    CreateEndpoint(CreateEndpointRequest),
    EndpointOperInfo(EndpointRequest),
    DeleteEndpoint(EndpointRequest),
    Join(JoinRequest),
    Leave(EndpointRequest),
    DiscoverNew(DiscoveryRequest),
    DiscoverDelete(DiscoveryRequest),
    ProgramExternalConnectivity(ExternalConnectivityRequest),
    RevokeExternalConnectivity(EndpointRequest),
    IpamCapabilities,
    DefaultAddressSpaces,
    RequestPool(RequestPoolRequest),
    ReleasePool(ReleasePoolRequest),
    RequestAddress(RequestAddressRequest),
    ReleaseAddress(ReleaseAddressRequest),
}

impl Call {
    /// The protocol name of the call (its path without the `/`), for messages and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Call::Activate => "Plugin.Activate",
            Call::NetworkCapabilities => "NetworkDriver.GetCapabilities",
            Call::CreateNetwork(_) => "NetworkDriver.CreateNetwork",
            Call::DeleteNetwork(_) => "NetworkDriver.DeleteNetwork",
            Call::AllocateNetwork(_) => "NetworkDriver.AllocateNetwork",
            Call::FreeNetwork(_) => "NetworkDriver.FreeNetwork",
            Call::CreateEndpoint(_) => "NetworkDriver.CreateEndpoint",
            Call::EndpointOperInfo(_) => "NetworkDriver.EndpointOperInfo",
            Call::DeleteEndpoint(_) => "NetworkDriver.DeleteEndpoint",
            Call::Join(_) => "NetworkDriver.Join",
            Call::Leave(_) => "NetworkDriver.Leave",
            Call::DiscoverNew(_) => "NetworkDriver.DiscoverNew",
            Call::DiscoverDelete(_) => "NetworkDriver.DiscoverDelete",
            Call::ProgramExternalConnectivity(_) => "NetworkDriver.ProgramExternalConnectivity",
            Call::RevokeExternalConnectivity(_) => "NetworkDriver.RevokeExternalConnectivity",
            Call::IpamCapabilities => "IpamDriver.GetCapabilities",
            Call::DefaultAddressSpaces => "IpamDriver.GetDefaultAddressSpaces",
            Call::RequestPool(_) => "IpamDriver.RequestPool",
            Call::ReleasePool(_) => "IpamDriver.ReleasePool",
            Call::RequestAddress(_) => "IpamDriver.RequestAddress",
            Call::ReleaseAddress(_) => "IpamDriver.ReleaseAddress",
        }
    }
}

/// The Docker and IPAM ids a call names, for logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallIds<'a> {
    pub network: Option<&'a str>,
    pub endpoint: Option<&'a str>,
    pub pool: Option<&'a str>,
}

impl Call {
    /// The ids this call names.
    pub fn ids(&self) -> CallIds<'_> {
        let (network, endpoint) = match self {
            Call::CreateNetwork(r) => (Some(&r.network_id), None),
            Call::AllocateNetwork(r) => (Some(&r.network_id), None),
            Call::DeleteNetwork(r) | Call::FreeNetwork(r) => (Some(&r.network_id), None),
            Call::CreateEndpoint(r) => (Some(&r.network_id), Some(&r.endpoint_id)),
            Call::Join(r) => (Some(&r.network_id), Some(&r.endpoint_id)),
            Call::ProgramExternalConnectivity(r) => (Some(&r.network_id), Some(&r.endpoint_id)),
            Call::EndpointOperInfo(r)
            | Call::DeleteEndpoint(r)
            | Call::Leave(r)
            | Call::RevokeExternalConnectivity(r) => (Some(&r.network_id), Some(&r.endpoint_id)),
            _ => (None, None),
        };
        let pool = match self {
            Call::ReleasePool(r) => Some(r.pool_id.as_str()),
            Call::RequestAddress(r) => Some(r.pool_id.as_str()),
            Call::ReleaseAddress(r) => Some(r.pool_id.as_str()),
            _ => None,
        };
        CallIds {
            network: network.map(|n| n.as_str()),
            endpoint: endpoint.map(|e| e.as_str()),
            pool,
        }
    }
}

/// Why a request was refused before any work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("{path} is not a call of the NetworkDriver or IpamDriver protocol")]
    UnknownPath { path: String },
    #[error(
        "{call}: the body has {size} bytes, more than the {MAX_BODY_BYTES} a plugin call may have"
    )]
    TooLarge { call: &'static str, size: usize },
    #[error("{call}: {message}")]
    Invalid { call: &'static str, message: String },
}

impl RequestError {
    /// The HTTP status to answer with: 404 for an unknown path (libnetwork then treats an
    /// optional call as not implemented), 400 otherwise.
    pub fn status(&self) -> u16 {
        match self {
            RequestError::UnknownPath { .. } => 404,
            _ => 400,
        }
    }
}

/// Every path this protocol has, with its name in messages.
pub const PATHS: &[&str] = &[
    "/Plugin.Activate",
    "/NetworkDriver.GetCapabilities",
    "/NetworkDriver.CreateNetwork",
    "/NetworkDriver.DeleteNetwork",
    "/NetworkDriver.AllocateNetwork",
    "/NetworkDriver.FreeNetwork",
    "/NetworkDriver.CreateEndpoint",
    "/NetworkDriver.EndpointOperInfo",
    "/NetworkDriver.DeleteEndpoint",
    "/NetworkDriver.Join",
    "/NetworkDriver.Leave",
    "/NetworkDriver.DiscoverNew",
    "/NetworkDriver.DiscoverDelete",
    "/NetworkDriver.ProgramExternalConnectivity",
    "/NetworkDriver.RevokeExternalConnectivity",
    "/IpamDriver.GetCapabilities",
    "/IpamDriver.GetDefaultAddressSpaces",
    "/IpamDriver.RequestPool",
    "/IpamDriver.ReleasePool",
    "/IpamDriver.RequestAddress",
    "/IpamDriver.ReleaseAddress",
];

/// Parse the body of `call` into `T`, naming the offending field on failure.
/// serde quotes a refused value whole; a message for Docker and the log stays short.
fn shortened(mut message: String) -> String {
    const MAX: usize = 400;
    if message.len() > MAX {
        let mut end = MAX;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str("... (cut)");
    }
    message
}

fn body<T: DeserializeOwned>(call: &'static str, bytes: &[u8]) -> Result<T, RequestError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(RequestError::Invalid {
            call,
            message: "the body is empty; this call needs a JSON object".into(),
        });
    }
    // serde would also read a struct from a JSON array; Docker only sends objects.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(RequestError::Invalid {
            call,
            message: "the body must be a JSON object".into(),
        });
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = if path == "." || path.is_empty() {
            inner.to_string()
        } else {
            format!("{path}: {inner}")
        };
        RequestError::Invalid {
            call,
            message: shortened(message),
        }
    })?;
    de.end().map_err(|e| RequestError::Invalid {
        call,
        message: format!("trailing data after the JSON object: {e}"),
    })?;
    Ok(value)
}

/// Parse one plugin call.
///
/// # Errors
/// [`RequestError`], with the HTTP status to answer in [`RequestError::status`].
pub fn parse(path: &str, bytes: &[u8]) -> Result<Call, RequestError> {
    let Some(call) = PATHS.iter().copied().find(|p| *p == path) else {
        return Err(RequestError::UnknownPath {
            path: path.chars().take(200).collect(),
        });
    };
    let name = &call[1..];
    if bytes.len() > MAX_BODY_BYTES {
        return Err(RequestError::TooLarge {
            call: name,
            size: bytes.len(),
        });
    }
    Ok(match call {
        // These carry no body (Docker sends none, or `null`/`{}`).
        "/Plugin.Activate" => Call::Activate,
        "/NetworkDriver.GetCapabilities" => Call::NetworkCapabilities,
        "/IpamDriver.GetCapabilities" => Call::IpamCapabilities,
        "/IpamDriver.GetDefaultAddressSpaces" => Call::DefaultAddressSpaces,
        "/NetworkDriver.CreateNetwork" => Call::CreateNetwork(body(name, bytes)?),
        "/NetworkDriver.DeleteNetwork" => Call::DeleteNetwork(body(name, bytes)?),
        "/NetworkDriver.AllocateNetwork" => Call::AllocateNetwork(body(name, bytes)?),
        "/NetworkDriver.FreeNetwork" => Call::FreeNetwork(body(name, bytes)?),
        "/NetworkDriver.CreateEndpoint" => Call::CreateEndpoint(body(name, bytes)?),
        "/NetworkDriver.EndpointOperInfo" => Call::EndpointOperInfo(body(name, bytes)?),
        "/NetworkDriver.DeleteEndpoint" => Call::DeleteEndpoint(body(name, bytes)?),
        "/NetworkDriver.Join" => Call::Join(body(name, bytes)?),
        "/NetworkDriver.Leave" => Call::Leave(body(name, bytes)?),
        "/NetworkDriver.DiscoverNew" => Call::DiscoverNew(body(name, bytes)?),
        "/NetworkDriver.DiscoverDelete" => Call::DiscoverDelete(body(name, bytes)?),
        "/NetworkDriver.ProgramExternalConnectivity" => {
            Call::ProgramExternalConnectivity(body(name, bytes)?)
        }
        "/NetworkDriver.RevokeExternalConnectivity" => {
            Call::RevokeExternalConnectivity(body(name, bytes)?)
        }
        "/IpamDriver.RequestPool" => Call::RequestPool(body(name, bytes)?),
        "/IpamDriver.ReleasePool" => Call::ReleasePool(body(name, bytes)?),
        "/IpamDriver.RequestAddress" => Call::RequestAddress(body(name, bytes)?),
        _ => Call::ReleaseAddress(body(name, bytes)?),
    })
}
