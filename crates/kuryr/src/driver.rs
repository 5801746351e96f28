//! The driver's settings from kuryr.conf and the host.

use std::sync::Arc;
use std::time::Duration;

use kuryr_driver::control_plane::{ControlPlane, EngineId, Source};
use kuryr_driver::options::Named;
use kuryr_driver::pool::PoolConfig;
use kuryr_driver::{DriverConfig, NestedKind, PortMode};

use crate::config::Config;

/// The driver settings of a loaded configuration; `host_id` is this host's name as Neutron
/// agents report it (see [`host_id`]).
///
/// # Errors
/// A port driver kuryr does not have, or options that contradict it (see [`port_mode`]).
pub fn driver_config(config: &Config, host_id: String) -> Result<DriverConfig, String> {
    Ok(DriverConfig {
        capability_scope: config.default.capability_scope.as_str().to_owned(),
        local_default_address_space: config.default.local_default_address_space.clone(),
        global_default_address_space: config.default.global_default_address_space.clone(),
        subnetpool_name_prefix: config.default.subnetpool_name_prefix.clone(),
        default_subnetpool_v4: config.neutron.default_subnetpool_v4.clone(),
        default_subnetpool_v6: config.neutron.default_subnetpool_v6.clone(),
        default_router: config.neutron.default_router.as_deref().map(Named::parse),
        enable_dhcp: config.neutron.enable_dhcp,
        veth_dst_prefix: config.binding.veth_dst_prefix.clone(),
        process_external_connectivity: config.default.process_external_connectivity,
        vif_plugging_is_fatal: config.neutron.vif_plugging_is_fatal,
        vif_plugging_timeout: config.neutron.vif_plugging_timeout,
        bindir: config.default.bindir.clone(),
        ovsdb_socket: config.binding.ovsdb_socket.clone(),
        port_mode: port_mode(
            &config.default.default_port_driver,
            &config.binding.default_driver,
            &config.binding.link_iface,
        )?,
        pool: pool_config(config),
        // `kuryr serve` sets it, under its plugin name.
        teardown_dir: None,
        control_plane: ControlPlane::new(control_plane_source(config, &host_id)),
        host_id,
    })
}

/// Where this daemon's control plane id comes from: `[DEFAULT] control_plane_id`, else the
/// Docker engine's id (read from `docker_socket` when first needed), else the host's name.
pub fn control_plane_source(config: &Config, host_id: &str) -> Source {
    if let Some(id) = &config.default.control_plane_id {
        return Source::Configured(id.clone());
    }
    match &config.default.docker_socket {
        Some(socket) => {
            let path = socket.clone();
            let ask: EngineId = Arc::new(move || {
                let path = path.clone();
                Box::pin(async move { crate::docker_api::engine_id(&path).await })
            });
            Source::DockerEngine {
                socket: socket.display().to_string(),
                ask,
            }
        }
        None => Source::Host(host_id.to_owned()),
    }
}

/// `[vif_pool]`, when enabled.
pub fn pool_config(config: &Config) -> Option<PoolConfig> {
    let p = &config.vif_pool;
    let count = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
    p.enabled.then(|| PoolConfig {
        min: p.ports_pool_min.map(count),
        max: count(p.ports_pool_max),
        batch: p.ports_pool_batch.map(|b| count(b).max(1)),
        update_frequency: p.ports_pool_update_frequency.max(Duration::from_secs(1)),
        idle_timeout: p.idle_timeout(),
        populate_on_network_create: p.populate_on_network_create,
        owner_write_delay: p.owner_write_delay,
        owner: String::new(),
    })
}

/// The port mode upstream's `[DEFAULT] default_port_driver` selects (short names, as the
/// options reader leaves them): `veth`, `vlan` (trunk subports, VLAN links) or `nested`
/// (allowed address pairs; macvlan links, or ipvlan when `[binding] default_driver` says
/// so). The binding follows from the port driver, so upstream's `enabled_port_drivers` and
/// `[binding] enabled_drivers` are not needed; a `[binding] default_driver` that names
/// another binding is refused rather than ignored.
///
/// # Errors
/// A message that names the options and what to set them to.
pub fn port_mode(port_driver: &str, binding: &str, link_iface: &str) -> Result<PortMode, String> {
    let contradiction = |fix: &str| {
        Err(format!(
            "[binding] default_driver = {binding} does not go with [DEFAULT] \
             default_port_driver = {port_driver}: {fix}"
        ))
    };
    let kind = match port_driver {
        "veth" => {
            return match binding {
                "vlan" => contradiction("for containers in a VM set default_port_driver = vlan"),
                "macvlan" | "ipvlan" => {
                    contradiction("for containers in a VM set default_port_driver = nested")
                }
                _ => Ok(PortMode::Veth),
            }
        }
        "vlan" => match binding {
            "veth" | "vlan" => NestedKind::Vlan,
            _ => return contradiction("vlan uses VLAN links; set default_driver = vlan"),
        },
        "nested" => match binding {
            "veth" | "macvlan" => NestedKind::Macvlan,
            "ipvlan" => NestedKind::Ipvlan,
            _ => {
                return contradiction(
                    "nested uses macvlan links; set default_driver = macvlan or ipvlan",
                )
            }
        },
        "sriov" => {
            return Err(
                "[DEFAULT] default_port_driver = sriov: kuryr has no SR-IOV port \
                        driver; use veth (bare metal), vlan or nested (containers in a VM)"
                    .into(),
            )
        }
        other => {
            return Err(format!(
                "[DEFAULT] default_port_driver = {other}: no such port driver; use veth (bare \
                 metal), vlan or nested (containers in a VM), as a name or as \
                 kuryr_libnetwork.port_driver.drivers.<name>"
            ))
        }
    };
    PortMode::nested(kind, link_iface)
}

/// This host's name, the `binding:host_id` Neutron agents use (as Python's
/// `socket.gethostname()`, which upstream kuryr uses).
pub fn host_id() -> std::io::Result<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")?;
    Ok(name.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(kind: NestedKind) -> PortMode {
        PortMode::nested(kind, "eth0").unwrap()
    }

    #[test]
    fn port_drivers_and_their_bindings() {
        assert_eq!(port_mode("veth", "veth", ""), Ok(PortMode::Veth));
        assert_eq!(port_mode("veth", "hw_veb", ""), Ok(PortMode::Veth));
        assert_eq!(
            port_mode("vlan", "veth", "eth0"),
            Ok(nested(NestedKind::Vlan))
        );
        assert_eq!(
            port_mode("vlan", "vlan", "eth0"),
            Ok(nested(NestedKind::Vlan))
        );
        assert_eq!(
            port_mode("nested", "veth", "eth0"),
            Ok(nested(NestedKind::Macvlan))
        );
        assert_eq!(
            port_mode("nested", "macvlan", "eth0"),
            Ok(nested(NestedKind::Macvlan))
        );
        assert_eq!(
            port_mode("nested", "ipvlan", "eth0"),
            Ok(nested(NestedKind::Ipvlan))
        );
    }

    #[test]
    fn refusals_say_what_to_set() {
        let err = port_mode("sriov", "veth", "").unwrap_err();
        assert!(err.contains("no SR-IOV port driver"), "{err}");
        let err = port_mode("bogus", "veth", "").unwrap_err();
        assert!(
            err.contains("default_port_driver = bogus: no such port driver"),
            "{err}"
        );
        let err = port_mode("veth", "vlan", "eth0").unwrap_err();
        assert!(err.contains("set default_port_driver = vlan"), "{err}");
        let err = port_mode("vlan", "macvlan", "eth0").unwrap_err();
        assert!(err.contains("set default_driver = vlan"), "{err}");
        let err = port_mode("nested", "vlan", "eth0").unwrap_err();
        assert!(err.contains("macvlan or ipvlan"), "{err}");
        let err = port_mode("vlan", "veth", "").unwrap_err();
        assert!(err.contains("[binding] link_iface is not set"), "{err}");
        let err = port_mode("nested", "veth", "eth 0").unwrap_err();
        assert!(
            err.contains("[binding] link_iface: invalid interface name"),
            "{err}"
        );
    }
}
