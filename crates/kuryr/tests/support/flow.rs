//! Docker's call sequences for the in-process plugin tests, and what they check on the
//! host.

use std::collections::HashMap;

use kuryr_openstack::neutron::{Filters, Network, Neutron, Port};
use serde_json::{json, Value};

use super::{docker_id, Plugin};

/// The two tags that carry a Docker id, as kuryr writes them.
pub fn id_tags(id: &str) -> Vec<String> {
    vec![
        format!("kuryr.net.uuid.lh:{}", &id[..32]),
        format!("kuryr.net.uuid.uh:{}", &id[32..]),
    ]
}

/// The Neutron network of a Docker network, found by its tags.
pub async fn network_of(n: &Neutron, docker_net: &str) -> Option<Network> {
    let mut found = n
        .networks()
        .list(&Filters::new().tags(id_tags(docker_net)))
        .await
        .unwrap();
    assert!(
        found.len() <= 1,
        "several networks carry {docker_net}'s tags"
    );
    found.pop()
}

/// The ports of a network that hold an address.
pub async fn ports_with_ip(n: &Neutron, network_id: &str, ip: &str) -> Vec<Port> {
    n.ports()
        .list(
            &Filters::new()
                .eq("network_id", network_id)
                .eq("fixed_ips", format!("ip_address={ip}")),
        )
        .await
        .unwrap()
}

pub fn link_exists(name: &str) -> bool {
    std::process::Command::new("ip")
        .args(["link", "show", "dev", name])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

pub fn link_mac(name: &str) -> String {
    let out = std::process::Command::new("ip")
        .args(["-j", "link", "show", "dev", name])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    v[0]["address"].as_str().unwrap_or_default().to_owned()
}

pub fn host_ifname(port_id: &str) -> String {
    format!("tap{}", &port_id[..11])
}

pub fn bare(cidr_or_ip: &str) -> &str {
    cidr_or_ip.split('/').next().unwrap()
}

/// The calls of `docker network create`, then `docker run`, as Docker sends them.
pub struct Flow<'a> {
    pub plugin: &'a Plugin,
    pub docker_net: String,
    pub pools: Vec<String>,
}

impl<'a> Flow<'a> {
    pub async fn create(
        plugin: &'a Plugin,
        v4: Option<&str>,
        v6: Option<&str>,
        generic: Value,
        ipam: Value,
    ) -> Result<Flow<'a>, Value> {
        let docker_net = docker_id();
        let mut pools = Vec::new();
        let mut data = HashMap::new();
        for (cidr, v6flag) in [(v4, false), (v6, true)] {
            let Some(cidr) = cidr else { continue };
            let (status, resp) = plugin
                .call(
                    "/IpamDriver.RequestPool",
                    json!({"AddressSpace": "", "Pool": cidr, "SubPool": "", "Options": ipam, "V6": v6flag}),
                )
                .await;
            if status != 200 {
                return Err(resp);
            }
            let pool_id = resp["PoolID"].as_str().unwrap().to_owned();
            let gw = resp["Data"]["com.docker.network.gateway"].clone();
            pools.push(pool_id);
            data.insert(
                v6flag,
                json!([{"AddressSpace": "", "Pool": resp["Pool"], "Gateway": gw}]),
            );
        }
        let (status, resp) = plugin
            .call(
                "/NetworkDriver.CreateNetwork",
                json!({"NetworkID": docker_net, "Options": {"com.docker.network.generic": generic,
                       "com.docker.network.enable_ipv6": v6.is_some()},
                       "IPv4Data": data.get(&false).cloned().unwrap_or(json!([])),
                       "IPv6Data": data.get(&true).cloned().unwrap_or(json!([]))}),
            )
            .await;
        if status != 200 {
            for p in &pools {
                plugin
                    .ok("/IpamDriver.ReleasePool", json!({"PoolID": p}))
                    .await;
            }
            return Err(resp);
        }
        Ok(Flow {
            plugin,
            docker_net,
            pools,
        })
    }

    /// RequestAddress per family, CreateEndpoint, Join: the endpoint id and its addresses.
    pub async fn run(&self, mac: &str, want: &[Option<&str>]) -> (String, Vec<String>) {
        let endpoint = docker_id();
        let mut addresses = Vec::new();
        for (i, pool) in self.pools.iter().enumerate() {
            let requested = want.get(i).copied().flatten().unwrap_or("");
            let resp = self
                .plugin
                .ok(
                    "/IpamDriver.RequestAddress",
                    json!({"PoolID": pool, "Address": requested,
                           "Options": {"com.docker.network.endpoint.macaddress": mac}}),
                )
                .await;
            addresses.push(resp["Address"].as_str().unwrap().to_owned());
        }
        let v4 = addresses
            .iter()
            .find(|a| !a.contains(':'))
            .cloned()
            .unwrap_or_default();
        let v6 = addresses
            .iter()
            .find(|a| a.contains(':'))
            .cloned()
            .unwrap_or_default();
        self.plugin
            .ok(
                "/NetworkDriver.CreateEndpoint",
                json!({"NetworkID": self.docker_net, "EndpointID": endpoint,
                       "Interface": {"Address": v4, "AddressIPv6": v6, "MacAddress": mac},
                       "Options": {}}),
            )
            .await;
        self.plugin
            .ok(
                "/NetworkDriver.Join",
                json!({"NetworkID": self.docker_net, "EndpointID": endpoint,
                       "SandboxKey": "/var/run/docker/netns/0123456789ab", "Options": {}}),
            )
            .await;
        (endpoint, addresses)
    }

    pub async fn stop(&self, endpoint: &str, addresses: &[String]) {
        let ids = json!({"NetworkID": self.docker_net, "EndpointID": endpoint});
        self.plugin
            .ok("/NetworkDriver.RevokeExternalConnectivity", ids.clone())
            .await;
        self.plugin.ok("/NetworkDriver.Leave", ids.clone()).await;
        self.plugin.ok("/NetworkDriver.DeleteEndpoint", ids).await;
        for (pool, addr) in self.pools.iter().zip(addresses) {
            self.plugin
                .ok(
                    "/IpamDriver.ReleaseAddress",
                    json!({"PoolID": pool, "Address": bare(addr)}),
                )
                .await;
        }
    }

    pub async fn remove(&self) {
        for p in &self.pools {
            self.plugin
                .ok("/IpamDriver.ReleasePool", json!({"PoolID": p}))
                .await;
        }
        self.plugin
            .ok(
                "/NetworkDriver.DeleteNetwork",
                json!({"NetworkID": self.docker_net}),
            )
            .await;
    }
}

pub fn mac(n: u8) -> String {
    format!(
        "02:42:ac:{:02x}:{:02x}:{n:02x}",
        std::process::id() % 256,
        (std::process::id() >> 8) % 256
    )
}
