//! The NetworkDriver protocol: requests and answers of `/NetworkDriver.*`, with Docker's
//! field names (moby/libnetwork `drivers/remote/api`).

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::values::{optional, DockerId, MacAddress};

/// Option keys libnetwork puts in requests.
pub mod keys {
    /// The `-o/--opt` map of `docker network create`.
    pub const GENERIC: &str = "com.docker.network.generic";
    pub const ENABLE_IPV6: &str = "com.docker.network.enable_ipv6";
    pub const EXPOSED_PORTS: &str = "com.docker.network.endpoint.exposedports";
    pub const PORT_MAP: &str = "com.docker.network.portmap";
    pub const MAC_ADDRESS: &str = "com.docker.network.endpoint.macaddress";
    pub const REQUEST_ADDRESS_TYPE: &str = "RequestAddressType";
    pub const GATEWAY: &str = "com.docker.network.gateway";
}

/// `/NetworkDriver.GetCapabilities` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// `local` or `global`.
    #[serde(rename = "Scope")]
    pub scope: String,
    #[serde(
        rename = "ConnectivityScope",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub connectivity_scope: Option<String>,
}

/// One address pool of a network, as IPAM gave it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IpamData {
    #[serde(rename = "AddressSpace", default)]
    pub address_space: String,
    #[serde(rename = "Pool", deserialize_with = "optional::required_cidr")]
    pub pool: IpNet,
    #[serde(rename = "Gateway", deserialize_with = "optional::cidr", default)]
    pub gateway: Option<IpNet>,
    #[serde(rename = "AuxAddresses", default)]
    pub aux_addresses: BTreeMap<String, String>,
}

/// `/NetworkDriver.CreateNetwork`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CreateNetworkRequest {
    #[serde(rename = "NetworkID")]
    pub network_id: DockerId,
    #[serde(rename = "Options", default)]
    pub options: Options,
    #[serde(rename = "IPv4Data", default, deserialize_with = "null_as_empty")]
    pub ipv4_data: Vec<IpamData>,
    #[serde(rename = "IPv6Data", default, deserialize_with = "null_as_empty")]
    pub ipv6_data: Vec<IpamData>,
}

/// `/NetworkDriver.AllocateNetwork` (swarm).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AllocateNetworkRequest {
    #[serde(rename = "NetworkID")]
    pub network_id: DockerId,
    #[serde(rename = "Options", default)]
    pub options: BTreeMap<String, String>,
    #[serde(rename = "IPv4Data", default, deserialize_with = "null_as_empty")]
    pub ipv4_data: Vec<IpamData>,
    #[serde(rename = "IPv6Data", default, deserialize_with = "null_as_empty")]
    pub ipv6_data: Vec<IpamData>,
}

impl AllocateNetworkRequest {
    /// The CreateNetwork a node would send for this network (its options as `-o` options).
    pub fn as_create(&self) -> CreateNetworkRequest {
        let generic: Map<String, Value> = self
            .options
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let mut options = Map::new();
        options.insert(keys::GENERIC.to_owned(), Value::Object(generic));
        CreateNetworkRequest {
            network_id: self.network_id.clone(),
            options: Options(options),
            ipv4_data: self.ipv4_data.clone(),
            ipv6_data: self.ipv6_data.clone(),
        }
    }
}

/// `/NetworkDriver.AllocateNetwork` answer: options handed to CreateNetwork on every node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AllocateNetworkResponse {
    #[serde(rename = "Options")]
    pub options: BTreeMap<String, String>,
}

/// Requests that name only a network: DeleteNetwork, FreeNetwork.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NetworkRequest {
    #[serde(rename = "NetworkID")]
    pub network_id: DockerId,
}

/// Requests that name an endpoint: DeleteEndpoint, EndpointOperInfo, Leave,
/// RevokeExternalConnectivity.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EndpointRequest {
    #[serde(rename = "NetworkID")]
    pub network_id: DockerId,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: DockerId,
}

/// The interface of an endpoint; Docker may leave any field empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct EndpointInterface {
    #[serde(
        rename = "Address",
        default,
        deserialize_with = "optional::cidr",
        skip_serializing_if = "Option::is_none",
        serialize_with = "optional::to_string_or_empty"
    )]
    pub address: Option<IpNet>,
    #[serde(
        rename = "AddressIPv6",
        default,
        deserialize_with = "optional::cidr",
        skip_serializing_if = "Option::is_none",
        serialize_with = "optional::to_string_or_empty"
    )]
    pub address_ipv6: Option<IpNet>,
    #[serde(
        rename = "MacAddress",
        default,
        deserialize_with = "optional::mac",
        skip_serializing_if = "Option::is_none",
        serialize_with = "optional::to_string_or_empty"
    )]
    pub mac_address: Option<MacAddress>,
}

/// `/NetworkDriver.CreateEndpoint`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CreateEndpointRequest {
    #[serde(rename = "NetworkID")]
    pub network_id: DockerId,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: DockerId,
    /// `null` when Docker lets the driver choose everything.
    #[serde(rename = "Interface", default)]
    pub interface: Option<EndpointInterface>,
    #[serde(rename = "Options", default)]
    pub options: Options,
}

/// `/NetworkDriver.CreateEndpoint` answer: only what Docker left empty may be filled in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CreateEndpointResponse {
    #[serde(rename = "Interface")]
    pub interface: EndpointInterface,
}

/// `/NetworkDriver.EndpointOperInfo` answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EndpointOperInfoResponse {
    #[serde(rename = "Value")]
    pub value: Map<String, Value>,
}

/// `/NetworkDriver.Join`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct JoinRequest {
    #[serde(rename = "NetworkID")]
    pub network_id: DockerId,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: DockerId,
    /// Path of the container's network namespace; not checked against a fixed prefix,
    /// because Docker's data root can be anywhere.
    #[serde(rename = "SandboxKey")]
    pub sandbox_key: String,
    #[serde(rename = "Options", default)]
    pub options: Options,
}

/// The container side of the interface: which host interface to move in, and its new name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InterfaceName {
    #[serde(rename = "SrcName")]
    pub src_name: String,
    #[serde(rename = "DstPrefix")]
    pub dst_prefix: String,
}

/// A route for the container: 0 = via `NextHop`, 1 = connected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaticRoute {
    #[serde(rename = "Destination")]
    pub destination: IpNet,
    #[serde(rename = "RouteType")]
    pub route_type: u8,
    #[serde(rename = "NextHop", skip_serializing_if = "Option::is_none")]
    pub next_hop: Option<IpAddr>,
}

/// `/NetworkDriver.Join` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JoinResponse {
    #[serde(rename = "InterfaceName")]
    pub interface_name: InterfaceName,
    #[serde(rename = "Gateway", skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    #[serde(rename = "GatewayIPv6", skip_serializing_if = "Option::is_none")]
    pub gateway_ipv6: Option<IpAddr>,
    #[serde(rename = "StaticRoutes", skip_serializing_if = "Vec::is_empty")]
    pub static_routes: Vec<StaticRoute>,
    /// True: Neutron routes the container, Docker must not add its `docker_gwbridge`.
    #[serde(rename = "DisableGatewayService")]
    pub disable_gateway_service: bool,
}

/// `/NetworkDriver.ProgramExternalConnectivity`; the options are the sandbox's, with the
/// exposed ports and port map.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ExternalConnectivityRequest {
    #[serde(rename = "NetworkID")]
    pub network_id: DockerId,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: DockerId,
    #[serde(rename = "Options", default)]
    pub options: Options,
}

/// `/NetworkDriver.DiscoverNew` and `DiscoverDelete`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DiscoveryRequest {
    #[serde(rename = "DiscoveryType")]
    pub discovery_type: i64,
    #[serde(rename = "DiscoveryData", default)]
    pub discovery_data: Value,
}

/// A port exposed by a container (`--expose`): protocol number (6 tcp, 17 udp, 1 icmp) and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, PartialOrd, Ord)]
pub struct ExposedPort {
    #[serde(rename = "Proto")]
    pub proto: u8,
    #[serde(rename = "Port")]
    pub port: u16,
}

/// A published port (`-p`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PortBinding {
    #[serde(rename = "Proto")]
    pub proto: u8,
    #[serde(rename = "IP", default)]
    pub ip: String,
    #[serde(rename = "Port")]
    pub port: u16,
    #[serde(rename = "HostIP", default)]
    pub host_ip: String,
    #[serde(rename = "HostPort", default)]
    pub host_port: u16,
    #[serde(rename = "HostPortEnd", default)]
    pub host_port_end: u16,
}

/// The free-form `Options` map of a request, with typed access to the keys kuryr reads.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct Options(#[serde(deserialize_with = "null_as_empty")] pub Map<String, Value>);

impl Options {
    /// The `-o key=value` options of `docker network create`.
    pub fn generic(&self) -> Result<BTreeMap<String, String>, String> {
        match self.0.get(keys::GENERIC) {
            None | Some(Value::Null) => Ok(BTreeMap::new()),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    Value::Bool(b) => Ok((k.clone(), b.to_string())),
                    Value::Number(n) => Ok((k.clone(), n.to_string())),
                    _ => Err(format!("option {k} must be a string")),
                })
                .collect(),
            Some(_) => Err(format!("{} must be a map of options", keys::GENERIC)),
        }
    }

    /// Whether the network has IPv6 (`--ipv6`).
    pub fn enable_ipv6(&self) -> bool {
        match self.0.get(keys::ENABLE_IPV6) {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s == "true",
            _ => false,
        }
    }

    /// The ports exposed with `--expose`.
    pub fn exposed_ports(&self) -> Result<Vec<ExposedPort>, String> {
        self.list(keys::EXPOSED_PORTS)
    }

    /// The ports published with `-p`.
    pub fn port_map(&self) -> Result<Vec<PortBinding>, String> {
        self.list(keys::PORT_MAP)
    }

    fn list<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Vec<T>, String> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| format!("{key}: {e}")),
        }
    }

    /// A string option (IPAM options, RequestAddress options).
    pub fn string(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }
}

/// `null` where Docker means "none" (an empty list or map).
fn null_as_empty<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_swarm_allocation_is_the_create_every_node_gets() {
        let req: AllocateNetworkRequest = serde_json::from_value(serde_json::json!({
            "NetworkID": "p2ar6zqa6m0x37wrje46g4xao",
            "Options": {"neutron.net.shared": "false"},
            "IPv4Data": [{"AddressSpace": "", "Pool": "10.20.0.0/24", "Gateway": "10.20.0.1/24"}],
            "IPv6Data": null
        }))
        .unwrap();
        assert!(req.network_id.is_swarm());
        let create = req.as_create();
        assert_eq!(create.network_id, req.network_id);
        assert_eq!(
            create.options.generic().unwrap().get("neutron.net.shared"),
            Some(&"false".to_owned())
        );
        assert_eq!(create.ipv4_data, req.ipv4_data);
        let local: DockerId = "a".repeat(64).parse().unwrap();
        assert!(!local.is_swarm());
    }
    use serde_json::json;

    #[test]
    fn options_typed_access() {
        let o: Options = serde_json::from_value(json!({
            "com.docker.network.generic": {"neutron.net.name": "existing", "neutron.net.shared": true},
            "com.docker.network.enable_ipv6": true,
            "com.docker.network.endpoint.exposedports": [{"Proto": 17, "Port": 1234}, {"Proto": 6, "Port": 80}],
            "com.docker.network.portmap": [{"Proto": 6, "IP": "", "Port": 80, "HostIP": "", "HostPort": 8080, "HostPortEnd": 8080}]
        }))
        .unwrap();
        assert_eq!(o.generic().unwrap()["neutron.net.name"], "existing");
        assert_eq!(o.generic().unwrap()["neutron.net.shared"], "true");
        assert!(o.enable_ipv6());
        assert_eq!(
            o.exposed_ports().unwrap()[0],
            ExposedPort {
                proto: 17,
                port: 1234
            }
        );
        assert_eq!(o.port_map().unwrap()[0].host_port, 8080);
        let bad: Options = serde_json::from_value(
            json!({"com.docker.network.endpoint.exposedports": [{"Proto": "tcp"}]}),
        )
        .unwrap();
        assert!(bad.exposed_ports().is_err());
        let null: Options = serde_json::from_value(json!(null)).unwrap();
        assert!(null.generic().unwrap().is_empty());
    }

    #[test]
    fn join_response_matches_dockers_shape() {
        let r = JoinResponse {
            interface_name: InterfaceName {
                src_name: "t_c61957c0c".into(),
                dst_prefix: "eth".into(),
            },
            gateway: Some("10.99.0.1".parse().unwrap()),
            gateway_ipv6: None,
            static_routes: vec![StaticRoute {
                destination: "192.0.2.0/24".parse().unwrap(),
                route_type: 0,
                next_hop: Some("10.99.0.254".parse().unwrap()),
            }],
            disable_gateway_service: true,
        };
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"InterfaceName": {"SrcName": "t_c61957c0c", "DstPrefix": "eth"}, "Gateway": "10.99.0.1",
                   "StaticRoutes": [{"Destination": "192.0.2.0/24", "RouteType": 0, "NextHop": "10.99.0.254"}],
                   "DisableGatewayService": true})
        );
    }

    #[test]
    fn create_endpoint_response_leaves_out_what_docker_gave() {
        assert_eq!(
            serde_json::to_value(CreateEndpointResponse::default()).unwrap(),
            json!({"Interface": {}})
        );
        let r = CreateEndpointResponse {
            interface: EndpointInterface {
                mac_address: Some("fa:16:3e:00:00:01".parse().unwrap()),
                ..Default::default()
            },
        };
        assert_eq!(
            serde_json::to_value(r).unwrap(),
            json!({"Interface": {"MacAddress": "fa:16:3e:00:00:01"}})
        );
    }
}
