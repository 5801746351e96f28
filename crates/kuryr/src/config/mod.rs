//! Configuration: upstream's `kuryr.conf` (same sections, option names and defaults), plus
//! `clouds.yaml` and `OS_*` variables for the OpenStack credentials.
//!
//! Precedence, lowest first: built-in defaults, the `clouds.yaml` cloud (`--os-cloud` or
//! `OS_CLOUD`), the `kuryr.conf` files (`--config-file`, repeatable; default
//! `/etc/kuryr/kuryr.conf` when it exists), then `OS_*` variables. Unknown options are
//! warnings; invalid values are errors that name the option and where it was set.

pub mod ini;
pub mod openstack;
pub mod options;
pub mod sources;

use std::path::{Path, PathBuf};

pub use openstack::OpenStackSettings;
pub use options::{BindingOptions, CapabilityScope, DefaultOptions, NeutronOptions};
use sources::RawConfig;

/// The default configuration file, read when no `--config-file` is given and it exists.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/kuryr/kuryr.conf";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a valid kuryr.conf", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: ini::IniError,
    },
    #[error("{}: {reason}", path.display())]
    Clouds { path: PathBuf, reason: String },
    #[error("no clouds.yaml found for cloud {cloud:?} (looked in {})", looked.join(", "))]
    NoCloudsFile { cloud: String, looked: Vec<String> },
    #[error("invalid value {value:?} for {option} (from {origin}): expected {expected}")]
    Invalid {
        option: String,
        value: String,
        origin: String,
        expected: String,
    },
    #[error("{0}")]
    Auth(String),
}

/// What the command line says about configuration.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub config_files: Vec<PathBuf>,
    pub os_cloud: Option<String>,
}

/// The whole configuration, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub default: DefaultOptions,
    pub neutron: NeutronOptions,
    pub binding: BindingOptions,
    pub openstack: OpenStackSettings,
    /// The files read, in order.
    pub files: Vec<PathBuf>,
    /// The clouds.yaml file and cloud used, if any.
    pub cloud: Option<(PathBuf, String)>,
    /// Unknown options and sections.
    pub warnings: Vec<String>,
}

impl Config {
    /// Load from the process environment and the files the command line names.
    pub fn load(opts: &LoadOptions) -> Result<Config, ConfigError> {
        Self::load_with_env(opts, std::env::vars())
    }

    /// Load with an explicit environment (tests pass their own).
    pub fn load_with_env(
        opts: &LoadOptions,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = env.into_iter().collect();
        let var = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let mut raw = RawConfig::default();

        let cloud = opts.os_cloud.clone().or_else(|| var("OS_CLOUD"));
        if let Some(cloud) = cloud.filter(|c| !c.is_empty()) {
            let candidates = sources::clouds_yaml_candidates(
                var("OS_CLIENT_CONFIG_FILE").map(PathBuf::from),
                var("HOME").map(PathBuf::from),
            );
            let Some(path) = candidates.iter().find(|p| p.is_file()) else {
                return Err(ConfigError::NoCloudsFile {
                    cloud,
                    looked: candidates.iter().map(|p| p.display().to_string()).collect(),
                });
            };
            raw.add_cloud(path, &cloud)?;
        }

        if opts.config_files.is_empty() {
            let default = Path::new(DEFAULT_CONFIG_FILE);
            if default.is_file() {
                raw.add_ini_file(default)?;
            }
        }
        for file in &opts.config_files {
            raw.add_ini_file(file)?;
        }
        raw.add_env(env.iter().cloned());

        Ok(Config {
            default: DefaultOptions::read(&raw)?,
            neutron: NeutronOptions::read(&raw)?,
            binding: BindingOptions::read(&raw)?,
            openstack: openstack::read(&raw)?,
            warnings: options::unknown_option_warnings(&raw),
            files: raw.files.clone(),
            cloud: raw.cloud.clone(),
        })
    }
}
