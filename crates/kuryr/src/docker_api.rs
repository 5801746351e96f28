//! Docker's own view, read from its API socket for the reconciler: the endpoints and
//! addresses of every container on every network. All networks, not only this plugin's:
//! endpoint ids are unique, so a port whose endpoint Docker has anywhere (another kuryr
//! plugin name, the upstream driver) is never taken for an orphan.

use std::path::Path;

use kuryr_driver::reconcile::DockerView;
use serde::Deserialize;
use serde_json::Value;

use crate::unix_http;

/// Docker 20.10's API version (the oldest engine kuryr is tested with).
const API: &str = "/v1.41";

#[derive(Debug, Deserialize)]
struct NetworkSummary {
    #[serde(rename = "Id")]
    id: String,
}

#[derive(Debug, Deserialize)]
struct NetworkDetail {
    #[serde(rename = "Containers", default)]
    containers: std::collections::HashMap<String, Attached>,
    #[serde(rename = "IPAM", default)]
    ipam: Ipam,
}

#[derive(Debug, Default, Deserialize)]
struct Ipam {
    #[serde(rename = "Config", default)]
    config: Option<Vec<IpamConfig>>,
}

#[derive(Debug, Deserialize)]
struct IpamConfig {
    #[serde(rename = "Subnet", default)]
    subnet: String,
    #[serde(rename = "IPRange", default)]
    ip_range: String,
}

#[derive(Debug, Deserialize)]
struct Attached {
    #[serde(rename = "EndpointID", default)]
    endpoint_id: String,
    #[serde(rename = "IPv4Address", default)]
    ipv4: String,
    #[serde(rename = "IPv6Address", default)]
    ipv6: String,
}

/// Docker's view of its networks.
///
/// # Errors
/// Docker's API cannot be reached or answers something else than its API documents.
pub async fn view(socket: &Path) -> Result<DockerView, String> {
    let networks: Vec<NetworkSummary> = get(socket, &format!("{API}/networks")).await?;
    let mut view = DockerView::default();
    for net in networks {
        view.networks.insert(net.id.clone());
        let detail: NetworkDetail = match get(socket, &format!("{API}/networks/{}", net.id)).await {
            Ok(d) => d,
            // Removed since the list: it holds nothing any more.
            Err(e) if e.contains("404") => continue,
            Err(e) => return Err(e),
        };
        for config in detail.ipam.config.iter().flatten() {
            for cidr in [&config.subnet, &config.ip_range] {
                if let Ok(net) = cidr.parse::<ipnet::IpNet>() {
                    view.pool_cidrs.insert(net.trunc());
                }
            }
        }
        for attached in detail.containers.values() {
            view.endpoints.insert(attached.endpoint_id.clone());
            for cidr in [&attached.ipv4, &attached.ipv6] {
                let bare = cidr.split('/').next().unwrap_or_default();
                if let Ok(ip) = bare.parse() {
                    view.addresses.insert(ip);
                }
            }
        }
    }
    Ok(view)
}

#[derive(Debug, Deserialize)]
struct Info {
    #[serde(rename = "ID", default)]
    id: String,
}

/// The engine's id (`docker info`'s ID): stable across restarts, unique per engine.
///
/// # Errors
/// Docker's API cannot be reached, or gives no id.
pub async fn engine_id(socket: &Path) -> Result<String, String> {
    let info: Info = get(socket, &format!("{API}/info")).await?;
    if info.id.is_empty() {
        return Err(format!(
            "Docker's API on {} gives no engine ID",
            socket.display()
        ));
    }
    Ok(info.id)
}

/// The network plugins Docker has loaded (socket-discovered ones appear once a network or
/// a call used them), and its managed plugins with whether each is enabled.
///
/// # Errors
/// Docker's API cannot be reached.
pub async fn network_plugins(socket: &Path) -> Result<(Vec<String>, Vec<(String, bool)>), String> {
    #[derive(Deserialize)]
    struct Plugins {
        #[serde(rename = "Network", default)]
        network: Vec<String>,
    }
    #[derive(Deserialize)]
    struct WithPlugins {
        #[serde(rename = "Plugins")]
        plugins: Option<Plugins>,
    }
    #[derive(Deserialize)]
    struct Managed {
        #[serde(rename = "Name", default)]
        name: String,
        #[serde(rename = "Enabled", default)]
        enabled: bool,
    }
    let info: WithPlugins = get(socket, &format!("{API}/info")).await?;
    let managed: Vec<Managed> = get(socket, &format!("{API}/plugins")).await?;
    Ok((
        info.plugins.map(|p| p.network).unwrap_or_default(),
        managed.into_iter().map(|m| (m.name, m.enabled)).collect(),
    ))
}

async fn get<T: serde::de::DeserializeOwned>(socket: &Path, path: &str) -> Result<T, String> {
    let (status, body) = unix_http::request(socket, "GET", path, &[])
        .await
        .map_err(|e| format!("Docker's API on {}: {e}", socket.display()))?;
    if status != 200 {
        let message = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        return Err(format!(
            "Docker's API answered {status} to GET {path}: {message}"
        ));
    }
    serde_json::from_slice(&body).map_err(|e| format!("Docker's answer to GET {path}: {e}"))
}

/// A container attached to a network, as `kuryr published` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub container: String,
    pub network: String,
}

#[derive(Debug, Deserialize)]
struct NamedNetwork {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Name", default)]
    name: String,
}

#[derive(Debug, Deserialize)]
struct NamedAttached {
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "EndpointID", default)]
    endpoint_id: String,
}

#[derive(Debug, Deserialize)]
struct NamedDetail {
    #[serde(rename = "Containers", default)]
    containers: std::collections::HashMap<String, NamedAttached>,
}

/// Every endpoint Docker has, with its container's and network's names.
///
/// # Errors
/// As [`view`].
pub async fn endpoints(
    socket: &Path,
) -> Result<std::collections::HashMap<String, Attachment>, String> {
    let networks: Vec<NamedNetwork> = get(socket, &format!("{API}/networks")).await?;
    let mut found = std::collections::HashMap::new();
    for net in networks {
        let detail: NamedDetail = match get(socket, &format!("{API}/networks/{}", net.id)).await {
            Ok(d) => d,
            Err(e) if e.contains("404") => continue,
            Err(e) => return Err(e),
        };
        for attached in detail.containers.into_values() {
            found.insert(
                attached.endpoint_id,
                Attachment {
                    container: attached.name,
                    network: net.name.clone(),
                },
            );
        }
    }
    Ok(found)
}
