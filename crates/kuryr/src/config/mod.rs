//! Configuration: upstream's `kuryr.conf` (same sections, option names and defaults), plus
//! `clouds.yaml` and `OS_*` variables for the OpenStack credentials.
//!
//! Precedence, lowest first: built-in defaults (upstream's, including its `OS_KURYR_URI` and
//! `CAPABILITY_SCOPE` variables), the `clouds.yaml` cloud (`--os-cloud` or `OS_CLOUD`), the
//! `kuryr.conf` files (`--config-file`, repeatable, then the `*.conf` of `--config-dir`; by
//! default the first of `~/.kuryr/kuryr.conf`, `~/kuryr.conf`, `/etc/kuryr/kuryr.conf`,
//! `/etc/kuryr.conf` that exists, as oslo.config looks), then `OS_*` variables. Values from
//! files get oslo's `$` substitution. Unknown options are warnings; invalid values are errors
//! that name the option and where it was set.

pub mod ini;
pub mod openstack;
pub mod options;
pub mod sources;
pub mod substitute;

use std::path::{Path, PathBuf};

pub use openstack::OpenStackSettings;
pub use options::default_admin_socket;
pub use options::{
    BindingOptions, CapabilityScope, DefaultOptions, MetricsOptions, NeutronOptions,
    PoolManagerOptions, VifPoolOptions,
};
use sources::RawConfig;

/// Where oslo.config looks for `kuryr.conf` when none is named: the first that exists.
pub fn default_config_files(home: Option<&Path>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(home) = home {
        out.push(home.join(".kuryr/kuryr.conf"));
        out.push(home.join("kuryr.conf"));
    }
    out.push(PathBuf::from("/etc/kuryr/kuryr.conf"));
    out.push(PathBuf::from("/etc/kuryr.conf"));
    out
}

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
    #[error("invalid value for {origin}")]
    Substitution {
        origin: String,
        #[source]
        source: substitute::SubstitutionError,
    },
}

/// What the command line says about configuration.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub config_files: Vec<PathBuf>,
    /// Every `*.conf` in it is read, in name order, after `config_files`.
    pub config_dir: Option<PathBuf>,
    pub os_cloud: Option<String>,
}

/// The whole configuration, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub default: DefaultOptions,
    pub neutron: NeutronOptions,
    pub binding: BindingOptions,
    pub vif_pool: VifPoolOptions,
    pub pool_manager: PoolManagerOptions,
    pub metrics: MetricsOptions,
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
        let var = |name: &str| {
            env.iter()
                .find(|(k, v)| k == name && !v.is_empty())
                .map(|(_, v)| v.clone())
        };
        let mut raw = RawConfig::default();
        raw.add_env_defaults(&env);

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

        if opts.config_files.is_empty() && opts.config_dir.is_none() {
            let home = var("HOME").map(PathBuf::from);
            if let Some(found) = default_config_files(home.as_deref())
                .iter()
                .find(|p| p.is_file())
            {
                raw.add_ini_file(found)?;
            }
        }
        for file in &opts.config_files {
            raw.add_ini_file(file)?;
        }
        if let Some(dir) = &opts.config_dir {
            for file in conf_files_in(dir)? {
                raw.add_ini_file(&file)?;
            }
        }
        substitute_file_values(&mut raw)?;
        raw.add_env(env.iter().cloned());

        Ok(Config {
            default: DefaultOptions::read(&raw)?,
            neutron: NeutronOptions::read(&raw)?,
            binding: BindingOptions::read(&raw)?,
            vif_pool: VifPoolOptions::read(&raw)?,
            pool_manager: PoolManagerOptions::read(&raw)?,
            metrics: MetricsOptions::read(&raw)?,
            openstack: openstack::read(&raw)?,
            warnings: options::unknown_option_warnings(&raw),
            files: raw.files.clone(),
            cloud: raw.cloud.clone(),
        })
    }
}

/// The `*.conf` files of a directory, in name order.
fn conf_files_in(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ConfigError::Read {
        path: dir.to_owned(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "conf") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// Apply oslo's `$` substitution to the options kuryr knows that came from files (an unknown
/// option is ignored anyway, so its value is left alone).
fn substitute_file_values(raw: &mut RawConfig) -> Result<(), ConfigError> {
    let auth_section = raw
        .get("neutron", "auth_section")
        .map(|v| v.value.trim().to_owned());
    let mut changes = Vec::new();
    for (section, values) in &raw.sections {
        let known = options::known_options(section, auth_section.as_deref()).unwrap_or_default();
        for (key, value) in values {
            if !known.contains(&key.as_str())
                || !matches!(value.origin, sources::Origin::File { .. })
            {
                continue;
            }
            let new =
                substitute::substitute(raw, section, key, &value.value).map_err(|source| {
                    ConfigError::Substitution {
                        origin: format!("[{section}] {key} ({})", value.origin),
                        source,
                    }
                })?;
            if new != value.value {
                changes.push((section.clone(), key.clone(), new, value.origin.clone()));
            }
        }
    }
    for (section, key, value, origin) in changes {
        raw.set(&section, &key, value, origin);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn base_env(home: &Path) -> Vec<(String, String)> {
        vec![("HOME".into(), home.display().to_string())]
    }

    const AUTH: &str = "[neutron]\nauth_url = http://k:5000\nusername = u\npassword = pa$$w\n";

    #[test]
    fn default_file_search_substitution_and_env_defaults() {
        let home = std::env::temp_dir().join(format!("kuryr-home-{}", std::process::id()));
        write(
            &home.join(".kuryr"),
            "kuryr.conf",
            &format!("[DEFAULT]\nbindir = /opt/bin\n{AUTH}"),
        );
        write(&home, "kuryr.conf", "[DEFAULT]\nbindir = /ignored\n");
        let mut env = base_env(&home);
        env.push(("CAPABILITY_SCOPE".into(), "global".into()));
        let config = Config::load_with_env(&LoadOptions::default(), env).unwrap();
        assert_eq!(
            config.files,
            vec![home.join(".kuryr/kuryr.conf")],
            "the first found only"
        );
        assert_eq!(config.default.bindir, PathBuf::from("/opt/bin"));
        assert_eq!(config.default.capability_scope, CapabilityScope::Global);
        let kuryr_openstack::AuthMethod::Keystone(auth) = &config.openstack.auth else {
            panic!("keystone auth expected")
        };
        let kuryr_openstack::auth::Credentials::Password { password, .. } = &auth.credentials
        else {
            panic!("password auth expected")
        };
        use secrecy::ExposeSecret;
        assert_eq!(password.expose_secret(), "pa$w", "oslo reads $$ as $");
    }

    #[test]
    fn config_dir_is_read_after_files_in_name_order() {
        let root = std::env::temp_dir().join(format!("kuryr-confdir-{}", std::process::id()));
        let main = write(
            &root,
            "main.conf",
            &format!("[DEFAULT]\nbindir = /a\n{AUTH}"),
        );
        let dir = root.join("kuryr.conf.d");
        write(&dir, "20-b.conf", "[DEFAULT]\nbindir = /c\n");
        write(&dir, "10-a.conf", "[DEFAULT]\nbindir = /b\n");
        write(&dir, "30-ignored.txt", "[DEFAULT]\nbindir = /x\n");
        let opts = LoadOptions {
            config_files: vec![main],
            config_dir: Some(dir),
            os_cloud: None,
        };
        let config = Config::load_with_env(&opts, base_env(&root)).unwrap();
        assert_eq!(config.default.bindir, PathBuf::from("/c"));
        assert_eq!(config.files.len(), 3);
    }

    #[test]
    fn an_unset_reference_is_an_error_naming_option_and_line() {
        let root = std::env::temp_dir().join(format!("kuryr-subst-{}", std::process::id()));
        let f = write(
            &root,
            "k.conf",
            "[neutron]\nauth_url = http://k\nusername = u\npassword = pa$word\n",
        );
        let opts = LoadOptions {
            config_files: vec![f],
            ..Default::default()
        };
        let err = Config::load_with_env(&opts, base_env(&root)).unwrap_err();
        let text = kuryr_openstack::error::chain(&err);
        assert!(text.contains("[neutron] password"), "{text}");
        assert!(text.contains("k.conf:4"), "{text}");
        assert!(text.contains("refers to $word"), "{text}");
        assert!(
            !text.contains("pa$word"),
            "the value itself is not shown: {text}"
        );
    }
}
