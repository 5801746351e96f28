//! The options of `kuryr.conf`: the same sections, names and defaults as upstream
//! kuryr-libnetwork and kuryr-lib, read from the merged sources with validation.
//!
//! An unknown option is a warning (a typo must not stop a host); a known option with an
//! invalid value is fatal, with the option's name and where the value came from.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::sources::{RawConfig, RawValue};
use super::ConfigError;

/// `capability_scope`: whether Docker sees networks as host-local or cluster-wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapabilityScope {
    Local,
    Global,
}

impl CapabilityScope {
    pub fn as_str(self) -> &'static str {
        match self {
            CapabilityScope::Local => "local",
            CapabilityScope::Global => "global",
        }
    }
}

/// `[DEFAULT]`.
#[derive(Debug, Clone, PartialEq)]
pub struct DefaultOptions {
    pub kuryr_uri: String,
    pub capability_scope: CapabilityScope,
    pub local_default_address_space: String,
    pub global_default_address_space: String,
    pub default_port_driver: String,
    pub enabled_port_drivers: Vec<String>,
    pub process_external_connectivity: bool,
    pub enable_ssl: bool,
    pub ssl_cert_file: PathBuf,
    pub ssl_key_file: PathBuf,
    pub bindir: PathBuf,
    /// Where kuryr keeps what must survive a restart (unfinished teardowns), one folder
    /// per plugin name.
    pub state_path: PathBuf,
    /// Docker's API socket, where the reconciler reads Docker's own view (kuryr's own
    /// option; empty: not read, and only host interfaces are reconciled).
    pub docker_socket: Option<PathBuf>,
    /// How often the reconciler looks for orphans (kuryr's own; zero: never by itself).
    pub reconcile_interval: Duration,
    /// How long a port must be left untouched before the reconciler may call it an orphan.
    pub orphan_min_age: Duration,
    pub subnetpool_name_prefix: String,
    /// The group given the plugin socket, a name or a numeric gid (kuryr's own option;
    /// unset: the daemon's own group).
    pub socket_group: Option<String>,
    /// The Docker control plane (engine or Swarm) whose networks this daemon maps, which
    /// scopes what several control planes share in Neutron (kuryr's own option; unset: the
    /// Docker engine's id).
    pub control_plane_id: Option<String>,
    pub debug: bool,
    pub log_file: Option<PathBuf>,
    pub log_dir: Option<PathBuf>,
}

/// `[neutron]`: kuryr's own options; the keystoneauth ones are read by [`super::openstack`].
#[derive(Debug, Clone, PartialEq)]
pub struct NeutronOptions {
    pub enable_dhcp: bool,
    pub default_subnetpool_v4: String,
    pub default_subnetpool_v6: String,
    /// The router (name or id) the subnets kuryr creates are attached to (kuryr's own
    /// option; unset: none).
    pub default_router: Option<String>,
    pub vif_plugging_is_fatal: bool,
    /// Zero means wait forever (when fatal).
    pub vif_plugging_timeout: Duration,
}

/// `[binding]`.
#[derive(Debug, Clone, PartialEq)]
pub struct BindingOptions {
    pub veth_dst_prefix: String,
    pub default_driver: String,
    pub enabled_drivers: Vec<String>,
    pub link_iface: String,
    /// ovsdb-server's unix socket (`unix:<path>`, os-vif's spelling), for the `ovs` binding.
    pub ovsdb_socket: PathBuf,
}

/// `[vif_pool]`: pools of pre-created ports (upstream kuryr-kubernetes' option names where
/// they exist; `enabled`, `ports_pool_idle_timeout`, `populate_on_network_create` and
/// `owner_write_delay` are kuryr's own). On unless `enabled = false`; without
/// `ports_pool_min` each pool sizes itself by demand and is given back when idle.
#[derive(Debug, Clone, PartialEq)]
pub struct VifPoolOptions {
    pub enabled: bool,
    /// Whether kuryr.conf says `enabled` (a nested daemon says why it has no pools then).
    pub enabled_set: bool,
    /// None: each pool sizes itself by demand.
    pub ports_pool_min: Option<u32>,
    /// Zero: no fixed maximum; a pool then holds at most a quarter of its subnet.
    pub ports_pool_max: u32,
    /// None: a refill makes what its pool lacks in one request.
    pub ports_pool_batch: Option<u32>,
    pub ports_pool_update_frequency: Duration,
    /// None: [`DEFAULT_IDLE_TIMEOUT`] for self-sizing pools, never with `ports_pool_min`.
    pub ports_pool_idle_timeout: Option<Duration>,
    pub populate_on_network_create: bool,
    /// How long a container holds a pool port before its owner is written to Neutron.
    pub owner_write_delay: Duration,
}

/// `[pool_manager]`: the daemon's local admin socket (`kuryr pool`, `kuryr stats`).
#[derive(Debug, Clone, PartialEq)]
pub struct PoolManagerOptions {
    /// Unset: `/run/kuryr/<plugin name>_manage.sock` ([`default_admin_socket`]).
    pub sock_file: Option<PathBuf>,
}

/// `[metrics]`: Prometheus metrics and health checks over HTTP.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsOptions {
    /// `bind_address` (`127.0.0.1:9797`); unset: no listener.
    pub bind_address: Option<std::net::SocketAddr>,
}

/// The admin socket of the daemon serving `plugin_name` when `sock_file` is not set: for
/// the default plugin name, where upstream kuryr-kubernetes puts its pool manager's socket.
pub fn default_admin_socket(plugin_name: &str) -> PathBuf {
    PathBuf::from(format!("/run/kuryr/{plugin_name}_manage.sock"))
}

/// `[vif_pool] owner_write_delay` unless set.
pub const DEFAULT_OWNER_WRITE_DELAY: Duration = Duration::from_secs(2);
/// `[vif_pool] ports_pool_idle_timeout` of self-sizing pools unless set.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

const VIF_POOL_KNOWN: &[&str] = &[
    "enabled",
    "ports_pool_min",
    "ports_pool_max",
    "ports_pool_batch",
    "ports_pool_update_frequency",
    "ports_pool_idle_timeout",
    "populate_on_network_create",
    "owner_write_delay",
];
/// Upstream kuryr-kubernetes options that mean nothing for Docker.
const VIF_POOL_ACCEPTED: &[&str] = &["vif_pool_mapping", "pools_vif_drivers"];
const POOL_MANAGER_KNOWN: &[&str] = &["sock_file"];
const METRICS_KNOWN: &[&str] = &["bind_address"];

/// Options of `[DEFAULT]` that kuryr reads.
const DEFAULT_KNOWN: &[&str] = &[
    "kuryr_uri",
    "capability_scope",
    "local_default_address_space",
    "global_default_address_space",
    "default_port_driver",
    "enabled_port_drivers",
    "process_external_connectivity",
    "enable_ssl",
    "ssl_cert_file",
    "ssl_key_file",
    "bindir",
    "state_path",
    "docker_socket",
    "reconcile_interval",
    "orphan_min_age",
    "subnetpool_name_prefix",
    "socket_group",
    "control_plane_id",
    "debug",
    "log_file",
    "log_dir",
];

/// Upstream and oslo.log options that are accepted and have no effect here.
const DEFAULT_ACCEPTED: &[&str] = &[
    "pybasedir",
    "deployment_type",
    "port_driver",
    "verbose",
    "use_syslog",
    "use_stderr",
    "use_journal",
    "use_json",
    "syslog_log_facility",
    "log_config_append",
    "log_date_format",
    "log_rotation_type",
    "max_logfile_count",
    "max_logfile_size_mb",
    "logging_context_format_string",
    "logging_default_format_string",
    "logging_debug_format_suffix",
    "logging_exception_prefix",
    "logging_user_identity_format",
    "default_log_levels",
    "publish_errors",
    "instance_format",
    "instance_uuid_format",
    "rate_limit_interval",
    "rate_limit_burst",
    "rate_limit_except_level",
    "fatal_deprecations",
    "watch_log_file",
    "config_file",
    "config_dir",
];

/// `[neutron]` options of kuryr itself; the keystoneauth ones are in [`super::openstack`].
const NEUTRON_OWN: &[&str] = &[
    "enable_dhcp",
    "default_subnetpool_v4",
    "default_subnetpool_v6",
    "default_router",
    "vif_plugging_is_fatal",
    "vif_plugging_timeout",
];

/// Every `[neutron]` option kuryr reads: its own, keystoneauth's auth plugin options
/// (which an `auth_section` may hold instead), and the session and endpoint options.
pub fn neutron_known() -> impl Iterator<Item = &'static str> {
    NEUTRON_OWN
        .iter()
        .chain(super::openstack::AUTH_PLUGIN_OPTIONS)
        .chain(super::openstack::CONNECTION_OPTIONS)
        .chain(["auth_section"].iter())
        .copied()
}

const NEUTRON_ACCEPTED: &[&str] = &[
    // Retries back off from connect_retry_delay.
    "status_code_retry_delay",
    "collect_timing",
    "split_loggers",
    "www_authenticate_uri",
    "auth_uri",
    "service_type",
    "service_name",
    "version",
    "min_version",
    "max_version",
    "trust_id",
];

/// Where Debian's and upstream's Open vSwitch put ovsdb-server's socket.
pub const DEFAULT_OVSDB_SOCKET: &str = "/var/run/openvswitch/db.sock";

const BINDING_KNOWN: &[&str] = &[
    "veth_dst_prefix",
    "default_driver",
    "driver",
    "enabled_drivers",
    "link_iface",
    "ovsdb_connection",
];

/// Sections kuryr itself reads; other sections are either `auth_section` targets or unknown.
pub const SECTIONS: &[(&str, &[&str], &[&str])] = &[
    ("DEFAULT", DEFAULT_KNOWN, DEFAULT_ACCEPTED),
    // Its known options come from `neutron_known()`.
    ("neutron", &[], NEUTRON_ACCEPTED),
    ("binding", BINDING_KNOWN, &[]),
    ("vif_pool", VIF_POOL_KNOWN, VIF_POOL_ACCEPTED),
    ("pool_manager", POOL_MANAGER_KNOWN, &[]),
    ("metrics", METRICS_KNOWN, &[]),
];

/// Reads typed values from one section of the merged config.
/// The options kuryr knows in `section` (read, or accepted and ignored); `auth_section` names
/// the section that holds the keystoneauth options, if any.
pub fn known_options(section: &str, auth_section: Option<&str>) -> Option<Vec<&'static str>> {
    let mut out: Vec<&'static str> = match SECTIONS.iter().find(|(name, _, _)| *name == section) {
        Some((_, known, accepted)) => known.iter().chain(accepted.iter()).copied().collect(),
        None if auth_section == Some(section) => NEUTRON_ACCEPTED.to_vec(),
        None => return None,
    };
    if section == "neutron" || auth_section == Some(section) {
        out.extend(neutron_known());
    }
    Some(out)
}

pub struct SectionReader<'a> {
    section: &'a str,
    values: Option<&'a BTreeMap<String, RawValue>>,
}

impl<'a> SectionReader<'a> {
    pub fn new(raw: &'a RawConfig, section: &'a str) -> Self {
        SectionReader {
            section,
            values: raw.sections.get(section),
        }
    }

    pub fn raw(&self, key: &str) -> Option<&'a RawValue> {
        self.values?.get(key)
    }

    fn invalid(&self, key: &str, v: &RawValue, expected: &str) -> ConfigError {
        ConfigError::Invalid {
            option: format!("[{}] {key}", self.section),
            value: v.value.clone(),
            origin: v.origin.to_string(),
            expected: expected.to_owned(),
        }
    }

    /// A string; empty counts as unset for options without a default.
    pub fn opt_string(&self, key: &str) -> Option<String> {
        self.raw(key)
            .map(|v| v.value.trim().to_owned())
            .filter(|s| !s.is_empty())
    }

    pub fn string(&self, key: &str, default: &str) -> String {
        self.opt_string(key).unwrap_or_else(|| default.to_owned())
    }

    /// `control_plane_id`: it goes into a Neutron tag and a URL path, so letters, digits
    /// and `.:_-~` only, at most 255 of them.
    fn control_plane_id(&self) -> Result<Option<String>, ConfigError> {
        let key = "control_plane_id";
        let Some(raw) = self.raw(key) else {
            return Ok(None);
        };
        let id = raw.value.trim();
        if id.is_empty() {
            return Ok(None);
        }
        if kuryr_driver::control_plane::is_valid_id(id) {
            Ok(Some(id.to_owned()))
        } else {
            Err(self.invalid(
                key,
                raw,
                "at most 255 letters, digits and .:_-~ (e.g. the name of a Swarm)",
            ))
        }
    }

    /// oslo.config booleans: true/false, yes/no, on/off, 1/0, any case.
    pub fn bool(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.raw(key) {
            None => Ok(default),
            Some(v) => match v.value.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => Ok(true),
                "false" | "no" | "off" | "0" => Ok(false),
                "" => Ok(default),
                _ => Err(self.invalid(key, v, "true or false")),
            },
        }
    }

    /// Seconds, possibly fractional (`timeout = 2.5`).
    pub fn opt_seconds(&self, key: &str) -> Result<Option<Duration>, ConfigError> {
        match self.raw(key) {
            None => Ok(None),
            Some(v) if v.value.trim().is_empty() => Ok(None),
            Some(v) => v
                .value
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e9)
                .map(|s| Some(Duration::from_secs_f64(s)))
                .ok_or_else(|| self.invalid(key, v, "a number of seconds, 0 or more")),
        }
    }

    /// `unix:<absolute path>`; kuryr talks to ovsdb-server over its local socket only.
    pub fn ovsdb_socket(&self, key: &str) -> Result<PathBuf, ConfigError> {
        let Some(v) = self.raw(key).filter(|v| !v.value.trim().is_empty()) else {
            return Ok(PathBuf::from(DEFAULT_OVSDB_SOCKET));
        };
        v.value
            .trim()
            .strip_prefix("unix:")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .ok_or_else(|| self.invalid(key, v, "unix:<absolute path of ovsdb-server's socket>"))
    }

    pub fn u32(&self, key: &str, default: u32) -> Result<u32, ConfigError> {
        Ok(self.opt_u32(key)?.unwrap_or(default))
    }

    /// A whole number; None when unset or empty.
    pub fn opt_u32(&self, key: &str) -> Result<Option<u32>, ConfigError> {
        match self.raw(key) {
            None => Ok(None),
            Some(v) if v.value.trim().is_empty() => Ok(None),
            Some(v) => v
                .value
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| self.invalid(key, v, "a whole number, 0 or more")),
        }
    }

    /// oslo ListOpt: comma-separated, items trimmed, empty items dropped.
    pub fn list(&self, key: &str, default: &[&str]) -> Vec<String> {
        match self.raw(key) {
            None => default.iter().map(|s| (*s).to_owned()).collect(),
            Some(v) => v
                .value
                .split([',', '\n'])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }

    pub fn choice(
        &self,
        key: &str,
        default: &str,
        choices: &[&str],
    ) -> Result<String, ConfigError> {
        let Some(v) = self.raw(key).filter(|v| !v.value.trim().is_empty()) else {
            return Ok(default.to_owned());
        };
        let value = v.value.trim();
        if choices.contains(&value) {
            Ok(value.to_owned())
        } else {
            Err(self.invalid(key, v, &format!("one of {}", choices.join(", "))))
        }
    }
}

impl DefaultOptions {
    pub fn read(raw: &RawConfig) -> Result<Self, ConfigError> {
        let s = SectionReader::new(raw, "DEFAULT");
        let scope = match s
            .choice("capability_scope", "local", &["local", "global"])?
            .as_str()
        {
            "global" => CapabilityScope::Global,
            _ => CapabilityScope::Local,
        };
        Ok(DefaultOptions {
            kuryr_uri: s.string("kuryr_uri", "http://127.0.0.1:23750"),
            capability_scope: scope,
            local_default_address_space: s
                .string("local_default_address_space", "no_address_space"),
            global_default_address_space: s
                .string("global_default_address_space", "no_address_space"),
            default_port_driver: short_driver_name(&s.string(
                "default_port_driver",
                "kuryr_libnetwork.port_driver.drivers.veth",
            )),
            enabled_port_drivers: s
                .list(
                    "enabled_port_drivers",
                    &["kuryr_libnetwork.port_driver.drivers.veth"],
                )
                .iter()
                .map(|d| short_driver_name(d))
                .collect(),
            process_external_connectivity: s.bool("process_external_connectivity", true)?,
            enable_ssl: s.bool("enable_ssl", false)?,
            ssl_cert_file: s
                .string("ssl_cert_file", "/var/lib/kuryr/certs/cert.pem")
                .into(),
            ssl_key_file: s
                .string("ssl_key_file", "/var/lib/kuryr/certs/key.pem")
                .into(),
            bindir: s.string("bindir", "/usr/libexec/kuryr").into(),
            state_path: s.string("state_path", "/var/lib/kuryr").into(),
            docker_socket: Some(s.string("docker_socket", "/var/run/docker.sock"))
                .filter(|p| !p.trim().is_empty())
                .map(PathBuf::from),
            reconcile_interval: s
                .opt_seconds("reconcile_interval")?
                .unwrap_or(Duration::from_secs(300)),
            orphan_min_age: s
                .opt_seconds("orphan_min_age")?
                .unwrap_or(Duration::from_secs(60)),
            subnetpool_name_prefix: s.string("subnetpool_name_prefix", "kuryrPool"),
            socket_group: s.opt_string("socket_group"),
            control_plane_id: s.control_plane_id()?,
            debug: s.bool("debug", false)?,
            log_file: s.opt_string("log_file").map(PathBuf::from),
            log_dir: s.opt_string("log_dir").map(PathBuf::from),
        })
    }
}

impl NeutronOptions {
    pub fn read(raw: &RawConfig) -> Result<Self, ConfigError> {
        let s = SectionReader::new(raw, "neutron");
        Ok(NeutronOptions {
            enable_dhcp: s.bool("enable_dhcp", true)?,
            default_subnetpool_v4: s.string("default_subnetpool_v4", "kuryr"),
            default_subnetpool_v6: s.string("default_subnetpool_v6", "kuryr6"),
            default_router: s.opt_string("default_router").filter(|r| !r.is_empty()),
            vif_plugging_is_fatal: s.bool("vif_plugging_is_fatal", false)?,
            vif_plugging_timeout: s.opt_seconds("vif_plugging_timeout")?.unwrap_or_default(),
        })
    }
}

impl BindingOptions {
    pub fn read(raw: &RawConfig) -> Result<Self, ConfigError> {
        let s = SectionReader::new(raw, "binding");
        // `driver` is the deprecated name of `default_driver`.
        let default_driver = s
            .opt_string("default_driver")
            .or_else(|| s.opt_string("driver"))
            .unwrap_or_else(|| "kuryr.lib.binding.drivers.veth".into());
        Ok(BindingOptions {
            veth_dst_prefix: s.string("veth_dst_prefix", "eth"),
            default_driver: short_driver_name(&default_driver),
            enabled_drivers: s
                .list("enabled_drivers", &["kuryr.lib.binding.drivers.veth"])
                .iter()
                .map(|d| short_driver_name(d))
                .collect(),
            link_iface: s.string("link_iface", ""),
            ovsdb_socket: s.ovsdb_socket("ovsdb_connection")?,
        })
    }
}

impl VifPoolOptions {
    pub fn read(raw: &RawConfig) -> Result<Self, ConfigError> {
        let s = SectionReader::new(raw, "vif_pool");
        let batch = s.opt_u32("ports_pool_batch")?;
        if let (Some(0), Some(v)) = (batch, s.raw("ports_pool_batch")) {
            return Err(s.invalid("ports_pool_batch", v, "at least 1 (ports per bulk request)"));
        }
        Ok(VifPoolOptions {
            enabled: s.bool("enabled", true)?,
            enabled_set: s.opt_string("enabled").is_some(),
            ports_pool_min: s.opt_u32("ports_pool_min")?,
            ports_pool_max: s.u32("ports_pool_max", 0)?,
            ports_pool_batch: batch,
            ports_pool_update_frequency: s
                .opt_seconds("ports_pool_update_frequency")?
                .unwrap_or(Duration::from_secs(20)),
            ports_pool_idle_timeout: s.opt_seconds("ports_pool_idle_timeout")?,
            populate_on_network_create: s.bool("populate_on_network_create", false)?,
            owner_write_delay: s
                .opt_seconds("owner_write_delay")?
                .unwrap_or(DEFAULT_OWNER_WRITE_DELAY),
        })
    }

    /// How long an unused pool keeps its free ports: as set, else
    /// [`DEFAULT_IDLE_TIMEOUT`] when pools size themselves and forever (zero) when
    /// `ports_pool_min` fixes their size.
    pub fn idle_timeout(&self) -> Duration {
        match (self.ports_pool_idle_timeout, self.ports_pool_min) {
            (Some(t), _) => t,
            (None, None) => DEFAULT_IDLE_TIMEOUT,
            (None, Some(_)) => Duration::ZERO,
        }
    }
}

impl PoolManagerOptions {
    pub fn read(raw: &RawConfig) -> Result<Self, ConfigError> {
        let s = SectionReader::new(raw, "pool_manager");
        Ok(PoolManagerOptions {
            sock_file: s.opt_string("sock_file").map(PathBuf::from),
        })
    }
}

impl MetricsOptions {
    pub fn read(raw: &RawConfig) -> Result<Self, ConfigError> {
        let s = SectionReader::new(raw, "metrics");
        let key = "bind_address";
        let bind_address = match s.raw(key) {
            Some(v) if !v.value.trim().is_empty() => {
                Some(v.value.trim().parse().map_err(|_| {
                    s.invalid(
                        key,
                        v,
                        "an address and port, e.g. 127.0.0.1:9797 (loopback keeps it on this host)",
                    )
                })?)
            }
            _ => None,
        };
        Ok(MetricsOptions { bind_address })
    }
}

/// `kuryr_libnetwork.port_driver.drivers.veth` and `veth` both name the `veth` driver.
pub fn short_driver_name(name: &str) -> String {
    name.rsplit('.').next().unwrap_or(name).to_owned()
}

/// Warnings for options and sections kuryr does not know (typos, or newer options).
pub fn unknown_option_warnings(raw: &RawConfig) -> Vec<String> {
    let auth_section = raw.get("neutron", "auth_section").map(|v| v.value.clone());
    let mut warnings = Vec::new();
    for (section, options) in &raw.sections {
        let Some(known) = known_options(section, auth_section.as_deref()) else {
            if !IGNORED_SECTIONS.contains(&section.as_str()) {
                let origin = options
                    .values()
                    .next()
                    .map(|v| v.origin.to_string())
                    .unwrap_or_default();
                warnings.push(format!("unknown section [{section}] ({origin}) is ignored"));
            }
            continue;
        };
        for (key, value) in options {
            if !known.contains(&key.as_str()) {
                warnings.push(format!(
                    "unknown option [{section}] {key} ({}) is ignored; check its spelling",
                    value.origin
                ));
            }
        }
    }
    warnings
}

/// Sections of upstream configuration files that kuryr does not use but that are not errors.
const IGNORED_SECTIONS: &[&str] = &[
    "oslo_concurrency",
    "oslo_messaging_rabbit",
    "keystone_authtoken",
    "vif_pool",
];

#[cfg(test)]
mod tests {
    use super::super::sources::Origin;
    use super::*;

    fn raw(text: &str) -> RawConfig {
        let mut raw = RawConfig::default();
        for (section, options) in super::super::ini::parse(text).unwrap() {
            for (k, v) in options {
                raw.set(
                    &section,
                    &k,
                    v.value,
                    Origin::File {
                        path: "kuryr.conf".into(),
                        line: v.line,
                    },
                );
            }
        }
        raw
    }

    #[test]
    fn upstream_defaults_when_empty() {
        let r = raw("");
        let d = DefaultOptions::read(&r).unwrap();
        assert_eq!(d.kuryr_uri, "http://127.0.0.1:23750");
        assert_eq!(d.capability_scope, CapabilityScope::Local);
        assert_eq!(d.default_port_driver, "veth");
        assert!(d.process_external_connectivity);
        assert_eq!(d.bindir, PathBuf::from("/usr/libexec/kuryr"));
        assert_eq!(d.subnetpool_name_prefix, "kuryrPool");
        let n = NeutronOptions::read(&r).unwrap();
        assert!(n.enable_dhcp);
        assert_eq!(n.default_subnetpool_v4, "kuryr");
        assert_eq!(n.default_subnetpool_v6, "kuryr6");
        assert_eq!(n.vif_plugging_timeout, Duration::ZERO);
        let b = BindingOptions::read(&r).unwrap();
        assert_eq!(b.veth_dst_prefix, "eth");
        assert_eq!(b.default_driver, "veth");
        assert_eq!(b.enabled_drivers, vec!["veth"]);
    }

    #[test]
    fn values_are_read_with_oslo_spellings() {
        let r = raw(
            "[DEFAULT]\ncapability_scope = global\nprocess_external_connectivity = False\n\
             default_port_driver = kuryr_libnetwork.port_driver.drivers.vlan\n\
             enabled_port_drivers = kuryr_libnetwork.port_driver.drivers.veth, vlan\n\
             [neutron]\nvif_plugging_is_fatal = yes\nvif_plugging_timeout = 2.5\n\
             [binding]\ndriver = kuryr.lib.binding.drivers.vlan\nlink_iface = ens3\n",
        );
        let d = DefaultOptions::read(&r).unwrap();
        assert_eq!(d.capability_scope, CapabilityScope::Global);
        assert!(!d.process_external_connectivity);
        assert_eq!(d.default_port_driver, "vlan");
        assert_eq!(d.enabled_port_drivers, vec!["veth", "vlan"]);
        let n = NeutronOptions::read(&r).unwrap();
        assert!(n.vif_plugging_is_fatal);
        assert_eq!(n.vif_plugging_timeout, Duration::from_millis(2500));
        let b = BindingOptions::read(&r).unwrap();
        assert_eq!(b.default_driver, "vlan");
        assert_eq!(b.link_iface, "ens3");
    }

    #[test]
    fn vif_pool_defaults_and_values() {
        let d = VifPoolOptions::read(&raw("")).unwrap();
        assert!(d.enabled, "pools are on unless kuryr.conf says otherwise");
        assert!(!d.enabled_set);
        assert_eq!(
            (d.ports_pool_min, d.ports_pool_max, d.ports_pool_batch),
            (None, 0, None)
        );
        assert_eq!(d.idle_timeout(), DEFAULT_IDLE_TIMEOUT);
        assert_eq!(d.ports_pool_update_frequency, Duration::from_secs(20));
        assert_eq!(d.owner_write_delay, DEFAULT_OWNER_WRITE_DELAY);
        let r = raw("[vif_pool]
enabled = true
owner_write_delay = 0.5
ports_pool_max = 7
ports_pool_min = 3
");
        let v = VifPoolOptions::read(&r).unwrap();
        assert!(v.enabled && v.enabled_set);
        assert_eq!(v.ports_pool_max, 7);
        assert_eq!(v.ports_pool_min, Some(3));
        assert_eq!(v.idle_timeout(), Duration::ZERO, "fixed sizes stay");
        assert_eq!(v.owner_write_delay, Duration::from_millis(500));
        let off = VifPoolOptions::read(&raw("[vif_pool]\nenabled = false\n")).unwrap();
        assert!(!off.enabled && off.enabled_set);
        let idle = VifPoolOptions::read(&raw(
            "[vif_pool]\nports_pool_min = 2\nports_pool_idle_timeout = 30\n",
        ))
        .unwrap();
        assert_eq!(idle.idle_timeout(), Duration::from_secs(30));
        let r = raw("[vif_pool]
owner_write_delay = soon
");
        let err = VifPoolOptions::read(&r).unwrap_err().to_string();
        assert!(err.contains("[vif_pool] owner_write_delay"), "{err}");
        let err = VifPoolOptions::read(&raw("[vif_pool]\nports_pool_batch = 0\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least 1"), "{err}");
    }

    #[test]
    fn invalid_values_name_the_option_and_the_line() {
        let r = raw("[DEFAULT]\n\ncapability_scope = galactic\n");
        let err = DefaultOptions::read(&r).unwrap_err().to_string();
        assert!(err.contains("[DEFAULT] capability_scope"), "{err}");
        assert!(err.contains("galactic"), "{err}");
        assert!(err.contains("kuryr.conf:3"), "{err}");
        assert!(err.contains("one of local, global"), "{err}");

        let r = raw("[neutron]\nvif_plugging_timeout = soon\n");
        let err = NeutronOptions::read(&r).unwrap_err().to_string();
        assert!(err.contains("[neutron] vif_plugging_timeout"), "{err}");
        let r = raw("[neutron]\nenable_dhcp = maybe\n");
        assert!(NeutronOptions::read(&r).is_err());
        let r = raw("[neutron]\nvif_plugging_timeout = -1\n");
        assert!(NeutronOptions::read(&r).is_err());
    }

    #[test]
    fn a_control_plane_id_must_fit_a_tag_and_a_url() {
        let id = |text: &str| DefaultOptions::read(&raw(text)).map(|d| d.control_plane_id);
        assert_eq!(id("[DEFAULT]\n").unwrap(), None);
        assert_eq!(id("[DEFAULT]\ncontrol_plane_id =\n").unwrap(), None);
        assert_eq!(
            id("[DEFAULT]\ncontrol_plane_id = swarm-a.prod:1\n").unwrap(),
            Some("swarm-a.prod:1".into())
        );
        let err = id("[DEFAULT]\ncontrol_plane_id = a/b\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("[DEFAULT] control_plane_id"), "{err}");
        assert!(err.contains("letters, digits"), "{err}");
        assert!(id(&format!(
            "[DEFAULT]\ncontrol_plane_id = {}\n",
            "x".repeat(256)
        ))
        .is_err());
    }

    #[test]
    fn unknown_options_and_sections_are_warnings() {
        let r = raw(
            "[DEFAULT]\nbindr = /x\npybasedir = /y\n[neutron]\nauth_section = keystone\nusrname = k\n\
             [keystone]\nusername = k\nfoo = 1\n[bogus]\na = 1\n[binding]\nlink_iface = x\n",
        );
        let w = unknown_option_warnings(&r);
        assert_eq!(w.len(), 4, "{w:?}");
        assert!(w.iter().any(|m| m.contains("[DEFAULT] bindr")));
        assert!(w.iter().any(|m| m.contains("[neutron] usrname")));
        assert!(w.iter().any(|m| m.contains("[keystone] foo")));
        assert!(w.iter().any(|m| m.contains("section [bogus]")));
    }
}
