//! From the keystoneauth options of `[neutron]` (or its `auth_section`) to a client session:
//! credentials, scope, endpoint choice, TLS, timeouts and retries.

use std::time::Duration;

use kuryr_openstack::auth::{
    normalize_interface, Credentials, DomainRef, EndpointFilter, KeystoneAuth, NamedRef, Scope,
};
use kuryr_openstack::{AuthMethod, HttpOptions, TlsOptions, RETRIABLE_STATUSES};
use secrecy::SecretString;
use url::Url;

use super::options::SectionReader;

/// The options of keystoneauth's auth plugins (what an `auth_section` holds).
pub(super) const AUTH_PLUGIN_OPTIONS: &[&str] = &[
    "auth_type",
    "auth_url",
    "username",
    "user_id",
    "password",
    "user_domain_name",
    "user_domain_id",
    "project_name",
    "project_id",
    "tenant_name",
    "tenant_id",
    "project_domain_name",
    "project_domain_id",
    "domain_name",
    "domain_id",
    "default_domain_name",
    "default_domain_id",
    "system_scope",
    "token",
    "application_credential_id",
    "application_credential_name",
    "application_credential_secret",
    "trust_id",
];

/// Session and endpoint options of `[neutron]` (shown by `kuryr doctor` with the auth ones).
pub(super) const CONNECTION_OPTIONS: &[&str] = &[
    "region_name",
    "endpoint_type",
    "interface",
    "valid_interfaces",
    "endpoint_override",
    "cafile",
    "certfile",
    "keyfile",
    "insecure",
    "timeout",
    "connect_timeout",
    "connect_retries",
    "connect_retry_delay",
    "status_code_retries",
    "retriable_status_codes",
    "retry_timeout",
];
use super::sources::RawConfig;
use super::ConfigError;

/// Everything needed to talk to Neutron.
#[derive(Debug, Clone)]
pub struct OpenStackSettings {
    pub auth: AuthMethod,
    pub endpoint: EndpointFilter,
    pub http: HttpOptions,
    /// One line on who authenticates where, without secrets (for logs and `kuryr doctor`).
    pub summary: String,
    /// `option <- origin` for each auth option that is set.
    pub origins: Vec<String>,
}

fn auth_error(reason: impl Into<String>) -> ConfigError {
    ConfigError::Auth(reason.into())
}

/// Read the settings from the merged config.
pub fn read(raw: &RawConfig) -> Result<OpenStackSettings, ConfigError> {
    // keystoneauth's auth_section: the auth plugin's options are read from that section
    // only (connection options stay in [neutron]); OS_* variables still override them.
    let merged;
    let raw = match raw
        .get("neutron", "auth_section")
        .map(|v| v.value.trim().to_owned())
    {
        Some(section) if !section.is_empty() => {
            let Some(options) = raw.sections.get(&section) else {
                return Err(auth_error(format!(
                    "[neutron] auth_section = {section}, but there is no [{section}] section"
                )));
            };
            let mut copy = raw.clone();
            for key in AUTH_PLUGIN_OPTIONS {
                let from_env = copy
                    .get("neutron", key)
                    .is_some_and(|v| matches!(v.origin, super::sources::Origin::Env(_)));
                if from_env {
                    continue;
                }
                copy.remove("neutron", key);
                if let Some(value) = options.get(*key) {
                    copy.set("neutron", key, value.value.clone(), value.origin.clone());
                }
            }
            merged = copy;
            &merged
        }
        _ => raw,
    };
    let s = SectionReader::new(raw, "neutron");

    let http = HttpOptions {
        connect_timeout: s
            .opt_seconds("connect_timeout")?
            .unwrap_or(Duration::from_secs(5)),
        request_timeout: s.opt_seconds("timeout")?.unwrap_or(Duration::from_secs(60)),
        retries: s.u32("connect_retries", 3)?,
        status_retries: s.u32("status_code_retries", 3)?,
        retriable_statuses: retriable_statuses(&s)?,
        retry_delay: s
            .opt_seconds("connect_retry_delay")?
            .unwrap_or(Duration::from_millis(250)),
        retry_timeout: s
            .opt_seconds("retry_timeout")?
            .unwrap_or(Duration::from_secs(15)),
        tls: TlsOptions {
            ca_file: s.opt_string("cafile").map(Into::into),
            cert_file: s.opt_string("certfile").map(Into::into),
            key_file: s.opt_string("keyfile").map(Into::into),
            insecure: s.bool("insecure", false)?,
        },
        ..HttpOptions::default()
    };
    if http.request_timeout.is_zero() || http.connect_timeout.is_zero() {
        return Err(auth_error(
            "[neutron] timeout and connect_timeout must be more than 0",
        ));
    }

    let interface = s
        .opt_string("endpoint_type")
        .or_else(|| s.opt_string("interface"))
        .or_else(|| {
            s.opt_string("valid_interfaces")
                .and_then(|v| v.split(',').next().map(|i| i.trim().to_owned()))
        })
        .unwrap_or_else(|| "public".into());
    let endpoint_override = match s.opt_string("endpoint_override") {
        None => None,
        Some(u) => Some(Url::parse(&u).map_err(|e| {
            auth_error(format!(
                "[neutron] endpoint_override = {u:?} is not a URL: {e}"
            ))
        })?),
    };
    let endpoint = EndpointFilter {
        service_type: "network".into(),
        interface: normalize_interface(&interface)
            .map_err(|e| auth_error(format!("[neutron] endpoint_type: {e}")))?,
        region: s.opt_string("region_name"),
        endpoint_override: endpoint_override.clone(),
    };

    let origins = AUTH_PLUGIN_OPTIONS
        .iter()
        .chain(CONNECTION_OPTIONS)
        .filter_map(|k| s.raw(k).map(|v| format!("{k} <- {}", v.origin)))
        .collect();

    let auth_type = s
        .opt_string("auth_type")
        .unwrap_or_else(|| guess_auth_type(&s).into());
    let (auth, summary) = match auth_type.to_ascii_lowercase().as_str() {
        "none" | "noauth" => {
            let Some(endpoint) = endpoint_override else {
                return Err(auth_error(
                    "auth_type = none needs [neutron] endpoint_override (the Neutron URL)",
                ));
            };
            let project_id = s.opt_string("project_id");
            let summary = format!(
                "no authentication, Neutron at {endpoint}, project {}",
                project_id.as_deref().unwrap_or("(not set)")
            );
            (
                AuthMethod::NoAuth {
                    endpoint,
                    project_id,
                },
                summary,
            )
        }
        kind @ ("password"
        | "v3password"
        | "token"
        | "v3token"
        | "v3applicationcredential"
        | "applicationcredential"
        | "application_credential"
        | "v3oidcaccesstoken") => {
            let auth_url = s
                .opt_string("auth_url")
                .ok_or_else(|| auth_error("[neutron] auth_url is not set (or OS_AUTH_URL)"))?;
            let credentials = credentials(&s, kind)?;
            let app_cred = matches!(credentials, Credentials::ApplicationCredential { .. });
            let scope = if app_cred {
                Scope::Unscoped
            } else {
                scope(&s)?
            };
            let summary = format!(
                "{} authenticating at {auth_url}{}",
                credentials.describe(),
                describe_scope(&scope)
            );
            let auth = KeystoneAuth::new(&auth_url, credentials, scope)
                .map_err(|e| auth_error(format!("[neutron] auth_url: {e}")))?;
            (AuthMethod::Keystone(auth), summary)
        }
        "v2password" | "v2token" => {
            return Err(auth_error(format!(
                "auth_type = {auth_type} is Keystone v2.0, which no longer exists: use password"
            )))
        }
        other => {
            return Err(auth_error(format!(
                "auth_type = {other} is not supported: use password, token, \
                 v3applicationcredential or none"
            )))
        }
    };
    if s.opt_string("trust_id").is_some() {
        tracing::warn!("[neutron] trust_id is not supported and is ignored");
    }
    Ok(OpenStackSettings {
        auth,
        endpoint,
        http,
        summary,
        origins,
    })
}

/// keystoneauth needs `auth_type`; kuryr guesses it from the options given, as the OpenStack
/// command-line clients do.
fn guess_auth_type(s: &SectionReader<'_>) -> &'static str {
    if s.opt_string("application_credential_secret").is_some() {
        "v3applicationcredential"
    } else if s.opt_string("password").is_none() && s.opt_string("token").is_some() {
        "token"
    } else {
        "password"
    }
}

fn domain(s: &SectionReader<'_>, id_key: &str, name_key: &str) -> Option<DomainRef> {
    s.opt_string(id_key)
        .map(DomainRef::Id)
        .or_else(|| s.opt_string(name_key).map(DomainRef::Name))
}

/// The domain of a user or project given by name: its own option, then `default_domain_*`,
/// then Keystone's default domain (id `default`).
fn domain_or_default(s: &SectionReader<'_>, id_key: &str, name_key: &str) -> DomainRef {
    domain(s, id_key, name_key)
        .or_else(|| domain(s, "default_domain_id", "default_domain_name"))
        .unwrap_or_else(|| DomainRef::Id("default".into()))
}

fn credentials(s: &SectionReader<'_>, kind: &str) -> Result<Credentials, ConfigError> {
    let user = || -> Option<NamedRef> {
        s.opt_string("user_id").map(NamedRef::Id).or_else(|| {
            s.opt_string("username").map(|name| NamedRef::Name {
                name,
                domain: domain_or_default(s, "user_domain_id", "user_domain_name"),
            })
        })
    };
    // An empty secret counts as unset: a config error, not a 401 from Keystone.
    let secret = |key: &str| s.opt_string(key).map(SecretString::from);
    match kind {
        "password" | "v3password" => Ok(Credentials::Password {
            user: user().ok_or_else(|| {
                auth_error("password auth needs [neutron] username or user_id (or OS_USERNAME)")
            })?,
            password: secret("password").ok_or_else(|| {
                auth_error("password auth needs [neutron] password (or OS_PASSWORD)")
            })?,
        }),
        "token" | "v3token" | "v3oidcaccesstoken" => Ok(Credentials::Token {
            token: secret("token")
                .ok_or_else(|| auth_error("token auth needs [neutron] token (or OS_TOKEN)"))?,
        }),
        _ => {
            let id = s.opt_string("application_credential_id");
            let name = s.opt_string("application_credential_name");
            if id.is_none() && (name.is_none() || user().is_none()) {
                return Err(auth_error(
                    "application credential auth needs application_credential_id, or \
                     application_credential_name with username or user_id",
                ));
            }
            Ok(Credentials::ApplicationCredential {
                id,
                name,
                user: user(),
                secret: secret("application_credential_secret").ok_or_else(|| {
                    auth_error("application credential auth needs application_credential_secret")
                })?,
            })
        }
    }
}

fn scope(s: &SectionReader<'_>) -> Result<Scope, ConfigError> {
    if let Some(id) = s
        .opt_string("project_id")
        .or_else(|| s.opt_string("tenant_id"))
    {
        return Ok(Scope::Project(NamedRef::Id(id)));
    }
    if let Some(name) = s
        .opt_string("project_name")
        .or_else(|| s.opt_string("tenant_name"))
    {
        return Ok(Scope::Project(NamedRef::Name {
            name,
            domain: domain_or_default(s, "project_domain_id", "project_domain_name"),
        }));
    }
    if let Some(d) = domain(s, "domain_id", "domain_name") {
        return Ok(Scope::Domain(d));
    }
    match s.opt_string("system_scope").as_deref() {
        Some("all") => Ok(Scope::System),
        Some(other) => Err(auth_error(format!(
            "[neutron] system_scope = {other}: only \"all\" exists"
        ))),
        None => Ok(Scope::Unscoped),
    }
}

fn describe_scope(scope: &Scope) -> String {
    let domain = |d: &DomainRef| match d {
        DomainRef::Id(id) => format!("domain id {id}"),
        DomainRef::Name(n) => format!("domain {n}"),
    };
    match scope {
        Scope::Unscoped => String::new(),
        Scope::Project(NamedRef::Id(id)) => format!(", project id {id}"),
        Scope::Project(NamedRef::Name { name, domain: d }) => {
            format!(", project {name} ({})", domain(d))
        }
        Scope::Domain(d) => format!(", {} scope", domain(d)),
        Scope::System => ", system scope".into(),
    }
}

/// keystoneauth's `retriable_status_codes`: HTTP statuses, 500 to 599 (a 4xx is the
/// request's own fault and would fail again).
fn retriable_statuses(s: &SectionReader<'_>) -> Result<Vec<u16>, ConfigError> {
    let defaults: Vec<String> = RETRIABLE_STATUSES.iter().map(u16::to_string).collect();
    let defaults: Vec<&str> = defaults.iter().map(String::as_str).collect();
    s.list("retriable_status_codes", &defaults)
        .iter()
        .map(|code| {
            code.parse::<u16>()
                .ok()
                .filter(|c| (500..=599).contains(c))
                .ok_or_else(|| {
                    auth_error(format!(
                        "[neutron] retriable_status_codes: {code} is not a status from 500 to 599"
                    ))
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::sources::Origin;
    use super::*;

    fn raw(pairs: &[(&str, &str, &str)]) -> RawConfig {
        let mut raw = RawConfig::default();
        for (section, k, v) in pairs {
            raw.set(
                section,
                k,
                (*v).to_owned(),
                Origin::Env(format!("test {k}")),
            );
        }
        raw
    }

    #[test]
    fn upstream_install_guide_section() {
        let r = raw(&[
            ("neutron", "auth_url", "http://controller:5000"),
            ("neutron", "auth_type", "password"),
            ("neutron", "username", "kuryr"),
            ("neutron", "user_domain_name", "Default"),
            ("neutron", "password", "p"),
            ("neutron", "project_name", "service"),
            ("neutron", "project_domain_name", "Default"),
            ("neutron", "www_authenticate_uri", "http://controller:5000"),
        ]);
        let settings = read(&r).unwrap();
        let AuthMethod::Keystone(auth) = &settings.auth else {
            panic!("expected keystone auth")
        };
        assert_eq!(auth.auth_url.as_str(), "http://controller:5000/v3");
        assert_eq!(
            auth.scope,
            Scope::Project(NamedRef::Name {
                name: "service".into(),
                domain: DomainRef::Name("Default".into())
            })
        );
        assert_eq!(settings.endpoint.interface, "public");
        assert_eq!(
            settings.summary,
            "user kuryr (domain Default) authenticating at http://controller:5000, project service (domain Default)"
        );
    }

    #[test]
    fn auth_section_supplies_auth_options() {
        let r = raw(&[
            ("neutron", "auth_section", "keystone_auth"),
            ("neutron", "region_name", "R2"),
            ("keystone_auth", "auth_url", "http://k/v3"),
            ("keystone_auth", "username", "u"),
            ("keystone_auth", "password", "p"),
            ("keystone_auth", "project_id", "p1"),
            ("neutron", "endpoint_type", "internalURL"),
        ]);
        let settings = read(&r).unwrap();
        assert_eq!(settings.endpoint.region.as_deref(), Some("R2"));
        assert_eq!(settings.endpoint.interface, "internal");
        let AuthMethod::Keystone(auth) = &settings.auth else {
            panic!()
        };
        assert_eq!(auth.scope, Scope::Project(NamedRef::Id("p1".into())));
        // The auth section replaces [neutron]'s auth options, as keystoneauth does.
        let r2 = raw(&[
            ("neutron", "auth_section", "ks"),
            ("neutron", "username", "ignored"),
            ("ks", "auth_url", "http://k/v3"),
            ("ks", "user_id", "uid"),
            ("ks", "password", "p"),
        ]);
        let AuthMethod::Keystone(auth) = read(&r2).unwrap().auth else {
            panic!()
        };
        let Credentials::Password { user, .. } = auth.credentials else {
            panic!()
        };
        assert_eq!(user, NamedRef::Id("uid".into()));
        let missing = raw(&[("neutron", "auth_section", "nope")]);
        assert!(read(&missing)
            .unwrap_err()
            .to_string()
            .contains("no [nope] section"));
    }

    #[test]
    fn guesses_and_defaults() {
        let r = raw(&[
            ("neutron", "auth_url", "http://k"),
            ("neutron", "application_credential_id", "ac1"),
            ("neutron", "application_credential_secret", "s"),
            ("neutron", "project_name", "ignored"),
        ]);
        let AuthMethod::Keystone(auth) = read(&r).unwrap().auth else {
            panic!()
        };
        assert!(matches!(
            auth.credentials,
            Credentials::ApplicationCredential { .. }
        ));
        assert_eq!(auth.scope, Scope::Unscoped);

        let r = raw(&[
            ("neutron", "auth_url", "http://k"),
            ("neutron", "username", "u"),
            ("neutron", "password", "p"),
            ("neutron", "domain_name", "Default"),
        ]);
        let AuthMethod::Keystone(auth) = read(&r).unwrap().auth else {
            panic!()
        };
        assert_eq!(auth.scope, Scope::Domain(DomainRef::Name("Default".into())));
        let Credentials::Password { user, .. } = auth.credentials else {
            panic!()
        };
        assert_eq!(
            user,
            NamedRef::Name {
                name: "u".into(),
                domain: DomainRef::Id("default".into())
            }
        );
    }

    #[test]
    fn noauth_needs_an_endpoint() {
        let r = raw(&[
            ("neutron", "auth_type", "none"),
            ("neutron", "project_id", "p"),
        ]);
        assert!(read(&r)
            .unwrap_err()
            .to_string()
            .contains("endpoint_override"));
        let r = raw(&[
            ("neutron", "auth_type", "noauth"),
            ("neutron", "endpoint_override", "http://127.0.0.1:9696"),
            ("neutron", "project_id", "p"),
        ]);
        assert!(matches!(read(&r).unwrap().auth, AuthMethod::NoAuth { .. }));
    }

    #[test]
    fn clear_errors_for_missing_or_wrong_settings() {
        type Case<'a> = (&'a [(&'a str, &'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            (
                &[("neutron", "username", "u"), ("neutron", "password", "p")],
                "auth_url is not set",
            ),
            (
                &[
                    ("neutron", "auth_url", "http://k"),
                    ("neutron", "password", "p"),
                ],
                "username or user_id",
            ),
            (
                &[
                    ("neutron", "auth_url", "http://k"),
                    ("neutron", "username", "u"),
                ],
                "needs [neutron] password",
            ),
            (&[("neutron", "auth_type", "v2password")], "v2.0"),
            (&[("neutron", "auth_type", "kerberos")], "not supported"),
            (&[("neutron", "endpoint_type", "private")], "endpoint_type"),
            (&[("neutron", "timeout", "0")], "more than 0"),
            (&[("neutron", "timeout", "abc")], "[neutron] timeout"),
            (&[("neutron", "insecure", "perhaps")], "[neutron] insecure"),
        ];
        for (pairs, want) in cases {
            let err = read(&raw(pairs)).unwrap_err().to_string();
            assert!(err.contains(want), "{pairs:?}: {err}");
        }
    }

    #[test]
    fn origins_are_listed_without_values() {
        let r = raw(&[
            ("neutron", "auth_url", "http://k"),
            ("neutron", "username", "u"),
            ("neutron", "password", "topsecret"),
            ("neutron", "enable_dhcp", "false"),
        ]);
        let s = read(&r).unwrap();
        assert!(s
            .origins
            .contains(&"password <- environment test password".to_string()));
        assert!(!s.origins.iter().any(|o| o.contains("topsecret")));
        assert!(!s.origins.iter().any(|o| o.starts_with("enable_dhcp")));
        assert!(!format!("{s:?}").contains("topsecret"));
    }
}
