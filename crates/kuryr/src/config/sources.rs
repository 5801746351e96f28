//! Where settings come from, merged in order, each value remembering its origin:
//!
//! 1. built-in defaults (in [`super::options`]);
//! 2. the `clouds.yaml` entry named by `--os-cloud` or `OS_CLOUD` (into `[neutron]`);
//! 3. the INI files (`--config-file`, repeatable, later files win; default
//!    `/etc/kuryr/kuryr.conf` when it exists);
//! 4. `OS_*` environment variables (into `[neutron]`);
//!
//! so a later source overrides an earlier one, option by option.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::ini;
use super::substitute::normalize_section;
use super::ConfigError;

/// Where one value came from (shown by `kuryr doctor` and in errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File { path: PathBuf, line: usize },
    Env(String),
    Clouds { path: PathBuf, cloud: String },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line } => write!(f, "{}:{line}", path.display()),
            Origin::Env(var) => write!(f, "environment {var}"),
            Origin::Clouds { path, cloud } => write!(f, "{} cloud {cloud}", path.display()),
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct RawValue {
    pub value: String,
    pub origin: Origin,
}

impl fmt::Debug for RawValue {
    // Values may be passwords: debug output shows where a value came from, never the value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawValue")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// Section name -> option -> value, after merging every source.
#[derive(Debug, Clone, Default)]
pub struct RawConfig {
    pub sections: BTreeMap<String, BTreeMap<String, RawValue>>,
    /// The files read, in order.
    pub files: Vec<PathBuf>,
    pub cloud: Option<(PathBuf, String)>,
}

impl RawConfig {
    pub fn set(&mut self, section: &str, key: &str, value: String, origin: Origin) {
        self.sections
            .entry(section.to_owned())
            .or_default()
            .insert(key.to_owned(), RawValue { value, origin });
    }

    pub fn get(&self, section: &str, key: &str) -> Option<&RawValue> {
        self.sections.get(section)?.get(key)
    }

    pub fn remove(&mut self, section: &str, key: &str) -> Option<RawValue> {
        self.sections.get_mut(section)?.remove(key)
    }

    /// Merge one oslo-style INI file.
    pub fn add_ini_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let sections = ini::parse(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })?;
        for (section, options) in sections {
            // As oslo.config: `[Neutron]` is `[neutron]`, but `DEFAULT` is only `DEFAULT`.
            let section = normalize_section(&section);
            for (key, v) in options {
                let origin = Origin::File {
                    path: path.to_owned(),
                    line: v.line,
                };
                self.set(&section, &key, v.value, origin);
            }
        }
        self.files.push(path.to_owned());
        Ok(())
    }

    /// Merge `OS_*` variables into `[neutron]`, as the OpenStack clients read them. An empty
    /// variable is taken as unset (it does not erase a value from a file).
    pub fn add_env(&mut self, vars: impl IntoIterator<Item = (String, String)>) {
        for (var, value) in vars {
            if value.trim().is_empty() {
                continue;
            }
            if let Some(option) = env_option(&var) {
                self.set("neutron", option, value, Origin::Env(var));
            }
        }
    }

    /// Upstream's environment defaults of `[DEFAULT]` options (`OS_KURYR_URI`,
    /// `CAPABILITY_SCOPE`); merged before the files, which override them.
    pub fn add_env_defaults(&mut self, vars: &[(String, String)]) {
        for (var, option) in [
            ("OS_KURYR_URI", "kuryr_uri"),
            ("CAPABILITY_SCOPE", "capability_scope"),
        ] {
            if let Some((_, value)) = vars.iter().find(|(k, v)| k == var && !v.trim().is_empty()) {
                self.set(
                    "DEFAULT",
                    option,
                    value.clone(),
                    Origin::Env(var.to_owned()),
                );
            }
        }
    }

    /// Merge one cloud of a `clouds.yaml` into `[neutron]`.
    pub fn add_cloud(&mut self, path: &Path, cloud: &str) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let doc: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&text).map_err(|e| ConfigError::Clouds {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        let Some(entry) = doc.get("clouds").and_then(|c| c.get(cloud)) else {
            let known: Vec<String> = doc
                .get("clouds")
                .and_then(|c| c.as_mapping())
                .map(|m| {
                    m.keys()
                        .filter_map(|k| k.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            return Err(ConfigError::Clouds {
                path: path.to_owned(),
                reason: format!(
                    "no cloud named {cloud:?} (clouds there: {})",
                    known.join(", ")
                ),
            });
        };
        let origin = Origin::Clouds {
            path: path.to_owned(),
            cloud: cloud.to_owned(),
        };
        if let Some(auth) = entry.get("auth").and_then(|a| a.as_mapping()) {
            for (k, v) in auth {
                if let (Some(k), Some(v)) = (k.as_str(), scalar(v)) {
                    self.set("neutron", k, v, origin.clone());
                }
            }
        }
        for (yaml_key, option) in CLOUD_OPTIONS {
            if let Some(v) = entry.get(*yaml_key).and_then(scalar) {
                self.set("neutron", option, v, origin.clone());
            }
        }
        // clouds.yaml says `verify: false`; keystoneauth's option is `insecure`.
        if let Some(verify) = entry.get("verify").and_then(|v| v.as_bool()) {
            self.set("neutron", "insecure", (!verify).to_string(), origin.clone());
        }
        self.cloud = Some((path.to_owned(), cloud.to_owned()));
        Ok(())
    }
}

/// clouds.yaml top-level keys and the `[neutron]` option each becomes.
const CLOUD_OPTIONS: &[(&str, &str)] = &[
    ("auth_type", "auth_type"),
    ("region_name", "region_name"),
    ("interface", "endpoint_type"),
    ("cacert", "cafile"),
    ("cert", "certfile"),
    ("key", "keyfile"),
    ("network_endpoint_override", "endpoint_override"),
    ("api_timeout", "timeout"),
];

fn scalar(v: &serde_yaml_ng::Value) -> Option<String> {
    match v {
        serde_yaml_ng::Value::String(s) => Some(s.clone()),
        serde_yaml_ng::Value::Bool(b) => Some(b.to_string()),
        serde_yaml_ng::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The `[neutron]` option an `OS_*` variable sets.
pub fn env_option(var: &str) -> Option<&'static str> {
    Some(match var {
        "OS_AUTH_URL" => "auth_url",
        "OS_AUTH_TYPE" => "auth_type",
        "OS_USERNAME" => "username",
        "OS_USER_ID" => "user_id",
        "OS_PASSWORD" => "password",
        "OS_PROJECT_NAME" | "OS_TENANT_NAME" => "project_name",
        "OS_PROJECT_ID" | "OS_TENANT_ID" => "project_id",
        "OS_USER_DOMAIN_NAME" => "user_domain_name",
        "OS_USER_DOMAIN_ID" => "user_domain_id",
        "OS_PROJECT_DOMAIN_NAME" => "project_domain_name",
        "OS_PROJECT_DOMAIN_ID" => "project_domain_id",
        "OS_DOMAIN_NAME" => "domain_name",
        "OS_DOMAIN_ID" => "domain_id",
        "OS_DEFAULT_DOMAIN_NAME" => "default_domain_name",
        "OS_DEFAULT_DOMAIN_ID" | "OS_DEFAULT_DOMAIN" => "default_domain_id",
        "OS_SYSTEM_SCOPE" => "system_scope",
        "OS_TOKEN" => "token",
        "OS_APPLICATION_CREDENTIAL_ID" => "application_credential_id",
        "OS_APPLICATION_CREDENTIAL_NAME" => "application_credential_name",
        "OS_APPLICATION_CREDENTIAL_SECRET" => "application_credential_secret",
        "OS_REGION_NAME" => "region_name",
        "OS_INTERFACE" | "OS_ENDPOINT_TYPE" => "endpoint_type",
        "OS_CACERT" => "cafile",
        "OS_CERT" => "certfile",
        "OS_KEY" => "keyfile",
        "OS_INSECURE" => "insecure",
        "OS_NETWORK_ENDPOINT_OVERRIDE" => "endpoint_override",
        _ => return None,
    })
}

/// Where `clouds.yaml` is looked for, as the OpenStack clients do.
pub fn clouds_yaml_candidates(env_file: Option<PathBuf>, home: Option<PathBuf>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(file) = env_file {
        out.push(file);
    }
    out.push(PathBuf::from("clouds.yaml"));
    if let Some(home) = home {
        out.push(home.join(".config/openstack/clouds.yaml"));
    }
    out.push(PathBuf::from("/etc/openstack/clouds.yaml"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kuryr-cfg-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn later_sources_override_earlier_ones_option_by_option() {
        let clouds = tmp(
            "clouds.yaml",
            "clouds:\n  lab:\n    auth:\n      auth_url: http://k:5000\n      username: from-cloud\n      password: p1\n    region_name: R1\n    interface: internal\n    verify: false\n",
        );
        let conf = tmp("kuryr.conf", "[neutron]\nusername = from-file\n");
        let mut raw = RawConfig::default();
        raw.add_cloud(&clouds, "lab").unwrap();
        raw.add_ini_file(&conf).unwrap();
        raw.add_env([
            ("OS_PASSWORD".to_string(), "from-env".to_string()),
            ("OS_USERNAME".to_string(), String::new()),
            ("HOME".to_string(), "/root".to_string()),
        ]);
        assert_eq!(
            raw.get("neutron", "auth_url").unwrap().value,
            "http://k:5000"
        );
        assert_eq!(
            raw.get("neutron", "username").unwrap().value,
            "from-file",
            "empty env is unset"
        );
        assert_eq!(raw.get("neutron", "password").unwrap().value, "from-env");
        assert!(
            !format!("{raw:?}").contains("from-env"),
            "debug output hides values"
        );
        assert_eq!(
            raw.get("neutron", "password").unwrap().origin.to_string(),
            "environment OS_PASSWORD"
        );
        assert_eq!(
            raw.get("neutron", "endpoint_type").unwrap().value,
            "internal"
        );
        assert_eq!(raw.get("neutron", "insecure").unwrap().value, "true");
        assert!(raw
            .get("neutron", "username")
            .unwrap()
            .origin
            .to_string()
            .ends_with("kuryr.conf:2"));
    }

    #[test]
    fn section_names_follow_oslo() {
        let conf = tmp(
            "case.conf",
            "[Neutron]\nusername = u\n[DEFAULT]\ndebug = true\n",
        );
        let mut raw = RawConfig::default();
        raw.add_ini_file(&conf).unwrap();
        assert_eq!(raw.get("neutron", "username").unwrap().value, "u");
        assert!(raw.get("DEFAULT", "debug").is_some());
    }

    #[test]
    fn unknown_cloud_lists_the_known_ones() {
        let clouds = tmp("c2.yaml", "clouds:\n  a: {}\n  b: {}\n");
        let err = RawConfig::default().add_cloud(&clouds, "x").unwrap_err();
        assert!(err.to_string().contains("clouds there: a, b"), "{err}");
    }

    #[test]
    fn missing_file_is_named() {
        let err = RawConfig::default()
            .add_ini_file(Path::new("/nonexistent/kuryr.conf"))
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/kuryr.conf"), "{err}");
    }
}
