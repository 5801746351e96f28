//! The driver's settings from kuryr.conf and the host.

use kuryr_driver::DriverConfig;

use crate::config::Config;

/// The driver settings of a loaded configuration; `host_id` is this host's name as Neutron
/// agents report it (see [`host_id`]).
pub fn driver_config(config: &Config, host_id: String) -> DriverConfig {
    DriverConfig {
        host_id,
        capability_scope: config.default.capability_scope.as_str().to_owned(),
        local_default_address_space: config.default.local_default_address_space.clone(),
        global_default_address_space: config.default.global_default_address_space.clone(),
        subnetpool_name_prefix: config.default.subnetpool_name_prefix.clone(),
        default_subnetpool_v4: config.neutron.default_subnetpool_v4.clone(),
        default_subnetpool_v6: config.neutron.default_subnetpool_v6.clone(),
        enable_dhcp: config.neutron.enable_dhcp,
        veth_dst_prefix: config.binding.veth_dst_prefix.clone(),
        process_external_connectivity: config.default.process_external_connectivity,
        vif_plugging_is_fatal: config.neutron.vif_plugging_is_fatal,
        vif_plugging_timeout: config.neutron.vif_plugging_timeout,
        bindir: config.default.bindir.clone(),
        ovsdb_socket: config.binding.ovsdb_socket.clone(),
    }
}

/// This host's name, the `binding:host_id` Neutron agents use (as Python's
/// `socket.gethostname()`, which upstream kuryr uses).
pub fn host_id() -> std::io::Result<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")?;
    Ok(name.trim().to_owned())
}
