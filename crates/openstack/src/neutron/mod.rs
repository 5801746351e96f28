//! The Neutron v2.0 API: typed resources behind one generic [`Api`], plus the few calls that
//! are not plain CRUD (trunk subports, router interfaces, extensions, IP availability).

mod api;
mod filters;
pub mod resources;

use reqwest::Method;
use serde_json::{json, Value};

pub use api::{Api, Resource, Taggable};
pub use filters::{validate_tag, Direction, Filters};
pub use resources::*;

use crate::auth::EndpointFilter;
use crate::error::{Error, Result, Service};
use crate::session::{AuthMethod, Request, Session};
use api::{check_id, take_key, to_value};

/// A Neutron client: a session plus the choice of endpoint.
#[derive(Clone, Debug)]
pub struct Neutron {
    session: Session,
    endpoint: EndpointFilter,
}

impl Neutron {
    /// A client for the `network` endpoint that `endpoint` selects.
    pub fn new(session: Session, endpoint: EndpointFilter) -> Self {
        Neutron { session, endpoint }
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    pub fn endpoint_filter(&self) -> &EndpointFilter {
        &self.endpoint
    }

    /// Send a request; the JSON answer's bytes (empty for 204).
    pub(crate) async fn call(&self, req: Request) -> Result<Vec<u8>> {
        let resp = self
            .session
            .send(Service::Neutron, &self.endpoint, req)
            .await?;
        Ok(resp.body)
    }

    /// In no-auth mode Neutron cannot tell the project from a token: put it in the body
    /// (Neutron takes the project of a port forwarding from its floating IP and ignores it).
    pub(crate) fn with_project(&self, mut item: Value) -> Value {
        if let AuthMethod::NoAuth {
            project_id: Some(project),
            ..
        } = self.session.auth()
        {
            if item.get("project_id").is_none() {
                item["project_id"] = json!(project);
            }
        }
        item
    }

    pub fn networks(&self) -> Api<Network> {
        self.api()
    }

    pub fn subnets(&self) -> Api<Subnet> {
        self.api()
    }

    pub fn subnetpools(&self) -> Api<SubnetPool> {
        self.api()
    }

    pub fn ports(&self) -> Api<Port> {
        self.api()
    }

    pub fn security_groups(&self) -> Api<SecurityGroup> {
        self.api()
    }

    pub fn security_group_rules(&self) -> Api<SecurityGroupRule> {
        self.api()
    }

    pub fn trunks(&self) -> Api<Trunk> {
        self.api()
    }

    pub fn routers(&self) -> Api<Router> {
        self.api()
    }

    pub fn floating_ips(&self) -> Api<FloatingIp> {
        self.api()
    }

    /// The port forwardings of one floating IP.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for an id that cannot be part of a URL path.
    pub fn port_forwardings(&self, floating_ip_id: &str) -> Result<Api<PortForwarding>> {
        Ok(Api::new(
            self.clone(),
            format!("floatingips/{}/port_forwardings", check_id(floating_ip_id)?),
        ))
    }

    fn api<R: Resource>(&self) -> Api<R> {
        Api::new(self.clone(), R::COLLECTION.to_string())
    }

    /// The API extensions Neutron has loaded.
    pub async fn extensions(&self) -> Result<Vec<Extension>> {
        let path = "v2.0/extensions";
        let value = self.call(Request::new(Method::GET, path)).await?;
        take_key(&value, "extensions", path)
    }

    /// Attach ports to a trunk as subports.
    pub async fn add_subports(&self, trunk_id: &str, subports: &[Subport]) -> Result<Trunk> {
        let path = format!("v2.0/trunks/{}/add_subports", check_id(trunk_id)?);
        self.trunk_call(path, subports, true).await
    }

    /// Detach subports from a trunk (only `port_id` is used).
    pub async fn remove_subports(&self, trunk_id: &str, subports: &[Subport]) -> Result<Trunk> {
        let path = format!("v2.0/trunks/{}/remove_subports", check_id(trunk_id)?);
        self.trunk_call(path, subports, false).await
    }

    async fn trunk_call(
        &self,
        path: String,
        subports: &[Subport],
        with_segmentation: bool,
    ) -> Result<Trunk> {
        let items: Vec<Value> = subports
            .iter()
            .map(|s| {
                if with_segmentation {
                    json!({"port_id": s.port_id, "segmentation_type": s.segmentation_type,
                           "segmentation_id": s.segmentation_id})
                } else {
                    json!({"port_id": s.port_id})
                }
            })
            .collect();
        // An action, not a value: sending it twice is not the same as once.
        let req = Request::new(Method::PUT, path.clone())
            .json(json!({ "sub_ports": items }))
            .not_idempotent();
        let value = self.call(req).await?;
        // Neutron answers with the trunk itself, not wrapped in a "trunk" key.
        decode(&value, &path)
    }

    /// The subports of a trunk.
    pub async fn subports(&self, trunk_id: &str) -> Result<Vec<Subport>> {
        let path = format!("v2.0/trunks/{}/get_subports", check_id(trunk_id)?);
        let value = self.call(Request::new(Method::GET, path.clone())).await?;
        take_key(&value, "sub_ports", &path)
    }

    /// Attach a subnet or port to a router.
    pub async fn add_router_interface(
        &self,
        router_id: &str,
        iface: &RouterInterface,
    ) -> Result<RouterInterfaceInfo> {
        self.router_interface_call(router_id, "add_router_interface", iface)
            .await
    }

    /// Detach a subnet or port from a router.
    pub async fn remove_router_interface(
        &self,
        router_id: &str,
        iface: &RouterInterface,
    ) -> Result<RouterInterfaceInfo> {
        self.router_interface_call(router_id, "remove_router_interface", iface)
            .await
    }

    async fn router_interface_call(
        &self,
        router_id: &str,
        action: &str,
        iface: &RouterInterface,
    ) -> Result<RouterInterfaceInfo> {
        let path = format!("v2.0/routers/{}/{action}", check_id(router_id)?);
        let body = match iface {
            RouterInterface::Subnet(id) => json!({ "subnet_id": id }),
            RouterInterface::Port(id) => json!({ "port_id": id }),
        };
        // Adding a subnet creates a port: never send it twice.
        let req = Request::new(Method::PUT, path.clone())
            .json(body)
            .not_idempotent();
        let value = self.call(req).await?;
        decode(&value, &path)
    }

    /// The agents that match `filters` (`host`, `agent_type`; an admin API by default).
    pub async fn agents(&self, filters: &Filters) -> Result<Vec<Agent>> {
        let path = "v2.0/agents";
        let value = self
            .call(Request::new(Method::GET, path).query(filters.to_pairs()?))
            .await?;
        take_key(&value, "agents", path)
    }

    /// Address usage of one network.
    pub async fn network_ip_availability(&self, network_id: &str) -> Result<NetworkIpAvailability> {
        let path = format!("v2.0/network-ip-availabilities/{}", check_id(network_id)?);
        let value = self.call(Request::new(Method::GET, path.clone())).await?;
        take_key(&value, "network_ip_availability", &path)
    }

    /// Address usage of every network that matches `filters`.
    pub async fn network_ip_availabilities(
        &self,
        filters: &Filters,
    ) -> Result<Vec<NetworkIpAvailability>> {
        let path = "v2.0/network-ip-availabilities";
        let value = self
            .call(Request::new(Method::GET, path).query(filters.to_pairs()?))
            .await?;
        take_key(&value, "network_ip_availabilities", path)
    }

    /// Serialize a spec as Neutron would receive it (for logs and tests).
    pub fn spec_json<R: Resource>(spec: &R::Spec) -> Result<Value> {
        to_value(spec)
    }
}

/// Parse an answer that is not wrapped in a resource key (trunk and router actions).
fn decode<T: serde::de::DeserializeOwned>(body: &[u8], path: &str) -> Result<T> {
    serde_json::from_slice(body).map_err(|source| Error::Decode {
        service: Service::Neutron,
        path: path.to_owned(),
        source: std::sync::Arc::new(source),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_spec_uses_neutron_field_names_and_skips_unset() {
        let spec = PortSpec {
            network_id: Some("n1".into()),
            device_owner: Some("compute:kuryr".into()),
            binding_host_id: Some("node-1".into()),
            fixed_ips: Some(vec![FixedIp {
                subnet_id: "s1".into(),
                ip_address: String::new(),
            }]),
            ..Default::default()
        };
        assert_eq!(
            Neutron::spec_json::<Port>(&spec).unwrap(),
            json!({"network_id": "n1", "device_owner": "compute:kuryr",
                   "binding:host_id": "node-1", "fixed_ips": [{"subnet_id": "s1"}]})
        );
    }

    #[test]
    fn subnet_without_gateway_sends_null() {
        let spec = SubnetSpec {
            gateway_ip: Some(None),
            ..Default::default()
        };
        assert_eq!(
            Neutron::spec_json::<Subnet>(&spec).unwrap(),
            json!({"gateway_ip": null})
        );
    }

    #[test]
    fn port_answer_with_nulls_and_binding_fields() {
        let port: Port = serde_json::from_value(json!({
            "id": "p1", "name": null, "network_id": "n1", "mac_address": "fa:16:3e:00:00:01",
            "binding:host_id": "node-1", "binding:vif_type": "ovs",
            "binding:vif_details": {"bridge_name": "br-int", "port_filter": true},
            "binding:profile": null,
            "fixed_ips": [{"subnet_id": "s1", "ip_address": "10.0.0.3"}],
            "trunk_details": {"trunk_id": "t1", "sub_ports": [
                {"port_id": "p2", "segmentation_type": "vlan", "segmentation_id": 101, "mac_address": "fa:16:3e:00:00:02"}]},
            "some_future_field": 1
        }))
        .unwrap();
        assert_eq!(port.name, "");
        assert_eq!(port.binding_vif_type, "ovs");
        assert_eq!(port.binding_vif_details["bridge_name"], "br-int");
        assert!(port.binding_profile.is_empty());
        assert_eq!(
            port.trunk_details.unwrap().sub_ports[0].segmentation_id,
            101
        );
    }

    #[test]
    fn subnetpool_prefixlen_as_string_or_number() {
        let a: SubnetPool = serde_json::from_value(json!({"default_prefixlen": "24"})).unwrap();
        let b: SubnetPool = serde_json::from_value(json!({"default_prefixlen": 24})).unwrap();
        assert_eq!(a.default_prefixlen, Some(24));
        assert_eq!(b.default_prefixlen, Some(24));
    }

    #[test]
    fn ipv6_availability_does_not_overflow() {
        let a: NetworkIpAvailability = serde_json::from_value(json!({
            "network_id": "n", "total_ips": 18446744073709551614u64, "used_ips": 3,
            "subnet_ip_availability": [{"subnet_id": "s", "cidr": "2001:db8::/64", "ip_version": 6,
                "total_ips": 18446744073709551614u64, "used_ips": 3}]
        }))
        .unwrap();
        assert_eq!(a.subnet_ip_availability[0].total_ips, 18446744073709551614);
    }
}
