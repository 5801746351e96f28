//! Keystone v3 authentication: what to authenticate with, the request it becomes, and the
//! token (with its service catalog) that comes back.
//!
//! Building the request body and reading the answer do no IO, so they are unit-tested here;
//! [`crate::Session`] does the sending and caching.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};
use url::Url;

use crate::error::{Error, Result};

/// A domain, by id or by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainRef {
    Id(String),
    Name(String),
}

impl DomainRef {
    fn to_json(&self) -> Value {
        match self {
            DomainRef::Id(id) => json!({ "id": id }),
            DomainRef::Name(name) => json!({ "name": name }),
        }
    }
}

/// A user or project: by id, or by name within a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamedRef {
    Id(String),
    Name { name: String, domain: DomainRef },
}

impl NamedRef {
    fn to_json(&self) -> Value {
        match self {
            NamedRef::Id(id) => json!({ "id": id }),
            NamedRef::Name { name, domain } => json!({ "name": name, "domain": domain.to_json() }),
        }
    }

    fn describe(&self) -> String {
        match self {
            NamedRef::Id(id) => format!("id {id}"),
            NamedRef::Name { name, domain } => match domain {
                DomainRef::Id(d) => format!("{name} (domain id {d})"),
                DomainRef::Name(d) => format!("{name} (domain {d})"),
            },
        }
    }
}

/// What the token is scoped to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Scope {
    /// No scope: the token carries no roles and no catalog.
    #[default]
    Unscoped,
    Project(NamedRef),
    Domain(DomainRef),
    /// Operator-wide system scope.
    System,
}

/// The secret that proves who we are.
#[derive(Clone)]
pub enum Credentials {
    Password {
        user: NamedRef,
        password: SecretString,
    },
    /// An existing token, exchanged for a (scoped) one.
    Token { token: SecretString },
    /// An application credential: by id, or by name with its user. It fixes the scope itself.
    ApplicationCredential {
        id: Option<String>,
        name: Option<String>,
        user: Option<NamedRef>,
        secret: SecretString,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets, even in debug logs.
        match self {
            Credentials::Password { user, .. } => f
                .debug_struct("Password")
                .field("user", user)
                .finish_non_exhaustive(),
            Credentials::Token { .. } => f.write_str("Token { .. }"),
            Credentials::ApplicationCredential { id, name, user, .. } => f
                .debug_struct("ApplicationCredential")
                .field("id", id)
                .field("name", name)
                .field("user", user)
                .finish_non_exhaustive(),
        }
    }
}

impl Credentials {
    /// Who is authenticating, for error messages.
    pub fn describe(&self) -> String {
        match self {
            Credentials::Password { user, .. } => format!("user {}", user.describe()),
            Credentials::Token { .. } => "the given token".into(),
            Credentials::ApplicationCredential { id: Some(id), .. } => {
                format!("application credential {id}")
            }
            Credentials::ApplicationCredential { name, user, .. } => format!(
                "application credential {} of user {}",
                name.as_deref().unwrap_or("?"),
                user.as_ref().map(NamedRef::describe).unwrap_or_default()
            ),
        }
    }
}

/// Keystone v3 authentication settings.
#[derive(Debug, Clone)]
pub struct KeystoneAuth {
    /// The identity endpoint; `/v3` is appended when missing.
    pub auth_url: Url,
    pub credentials: Credentials,
    pub scope: Scope,
}

impl KeystoneAuth {
    /// Normalise `auth_url` so that it ends in `/v3`.
    pub fn new(auth_url: &str, credentials: Credentials, scope: Scope) -> Result<Self> {
        Ok(KeystoneAuth {
            auth_url: v3_url(auth_url)?,
            credentials,
            scope,
        })
    }

    /// The URL tokens are requested from.
    pub fn tokens_url(&self) -> Url {
        let mut url = self.auth_url.clone();
        url.path_segments_mut()
            .map(|mut s| {
                s.pop_if_empty().extend(["auth", "tokens"]);
            })
            .ok();
        url
    }

    /// The JSON body of `POST /v3/auth/tokens`.
    pub fn request_body(&self) -> Result<Value> {
        let identity = match &self.credentials {
            Credentials::Password { user, password } => {
                let mut user = user.to_json();
                user["password"] = Value::String(password.expose_secret().to_owned());
                json!({ "methods": ["password"], "password": { "user": user } })
            }
            Credentials::Token { token } => {
                json!({ "methods": ["token"], "token": { "id": token.expose_secret() } })
            }
            Credentials::ApplicationCredential {
                id,
                name,
                user,
                secret,
            } => {
                let mut cred = json!({ "secret": secret.expose_secret() });
                match (id, name, user) {
                    (Some(id), _, _) => cred["id"] = json!(id),
                    (None, Some(name), Some(user)) => {
                        cred["name"] = json!(name);
                        cred["user"] = user.to_json();
                    }
                    _ => {
                        return Err(Error::InvalidSettings(
                            "an application credential needs application_credential_id, or \
                             application_credential_name with the user's name or id"
                                .into(),
                        ))
                    }
                }
                json!({ "methods": ["application_credential"], "application_credential": cred })
            }
        };
        let mut auth = json!({ "identity": identity });
        let app_cred = matches!(self.credentials, Credentials::ApplicationCredential { .. });
        match &self.scope {
            Scope::Unscoped => {}
            // An application credential carries its own scope; Keystone refuses another one.
            _ if app_cred => {}
            Scope::Project(p) => auth["scope"] = json!({ "project": p.to_json() }),
            Scope::Domain(d) => auth["scope"] = json!({ "domain": d.to_json() }),
            Scope::System => auth["scope"] = json!({ "system": { "all": true } }),
        }
        Ok(json!({ "auth": auth }))
    }
}

/// Turn `http://host:5000`, `http://host:5000/` or `http://host/identity/v3/` into a `.../v3` URL.
pub fn v3_url(auth_url: &str) -> Result<Url> {
    let mut url = Url::parse(auth_url.trim())
        .map_err(|e| Error::InvalidSettings(format!("auth_url {auth_url:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::InvalidSettings(format!(
            "auth_url {auth_url:?} must be http:// or https://"
        )));
    }
    let path = url.path().trim_end_matches('/').to_string();
    if path.ends_with("/v2.0") {
        return Err(Error::InvalidSettings(format!(
            "auth_url {auth_url:?} is Keystone v2.0, which no longer exists: use the /v3 URL"
        )));
    }
    if !path.ends_with("/v3") {
        url.set_path(&format!("{path}/v3"));
    } else {
        url.set_path(&path);
    }
    Ok(url)
}

/// An endpoint in the service catalog.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct CatalogEndpoint {
    pub interface: String,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub region_id: Option<String>,
    pub url: String,
}

/// A service in the service catalog.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct CatalogService {
    #[serde(rename = "type")]
    pub service_type: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub endpoints: Vec<CatalogEndpoint>,
}

/// Which endpoint of a service to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointFilter {
    pub service_type: String,
    /// `public`, `internal` or `admin`.
    pub interface: String,
    pub region: Option<String>,
    /// Skip the catalog and use this URL.
    pub endpoint_override: Option<Url>,
}

impl EndpointFilter {
    pub fn new(service_type: &str) -> Self {
        EndpointFilter {
            service_type: service_type.into(),
            interface: "public".into(),
            region: None,
            endpoint_override: None,
        }
    }
}

/// Normalise keystoneauth's interface spellings (`publicURL`, `internalURL`, ...).
pub fn normalize_interface(interface: &str) -> Result<String> {
    let lower = interface.trim().to_ascii_lowercase();
    let base = lower.strip_suffix("url").unwrap_or(&lower);
    match base {
        "public" | "internal" | "admin" => Ok(base.to_string()),
        _ => Err(Error::InvalidSettings(format!(
            "endpoint type {interface:?} is not one of public, internal, admin"
        ))),
    }
}

/// Find the URL of the endpoint that `filter` asks for.
pub fn find_endpoint(catalog: &[CatalogService], filter: &EndpointFilter) -> Result<Url> {
    if let Some(url) = &filter.endpoint_override {
        return Ok(url.clone());
    }
    let endpoints = catalog
        .iter()
        .filter(|s| s.service_type == filter.service_type)
        .flat_map(|s| s.endpoints.iter());
    let mut available = Vec::new();
    for ep in endpoints {
        let region = ep.region_id.as_deref().or(ep.region.as_deref());
        available.push(format!(
            "{}@{} {}",
            ep.interface,
            region.unwrap_or("-"),
            ep.url
        ));
        let region_ok = match &filter.region {
            None => true,
            Some(want) => region == Some(want.as_str()) || ep.region.as_deref() == Some(want),
        };
        if ep.interface == filter.interface && region_ok {
            return Url::parse(&ep.url).map_err(|e| {
                Error::InvalidSettings(format!(
                    "the catalog's {} endpoint {:?} is not a URL: {e}",
                    filter.service_type, ep.url
                ))
            });
        }
    }
    Err(Error::EndpointNotFound {
        service_type: filter.service_type.clone(),
        interface: filter.interface.clone(),
        region: filter.region.clone(),
        available,
    })
}

/// Who and what a token is for, as Keystone said.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct TokenSubject {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
}

/// A Keystone token and what came with it.
#[derive(Clone)]
pub struct Token {
    value: SecretString,
    pub expires_at: DateTime<Utc>,
    pub issued_at: Option<DateTime<Utc>>,
    pub user: TokenSubject,
    pub project: Option<TokenSubject>,
    pub domain: Option<TokenSubject>,
    pub roles: Vec<String>,
    pub catalog: Vec<CatalogService>,
    /// Increases with each token this session obtained; tells tokens apart without the secret.
    pub serial: u64,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("expires_at", &self.expires_at)
            .field("user", &self.user)
            .field("project", &self.project)
            .field("serial", &self.serial)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenBody {
    token: TokenFields,
}

#[derive(Deserialize)]
struct TokenFields {
    expires_at: DateTime<Utc>,
    #[serde(default)]
    issued_at: Option<DateTime<Utc>>,
    #[serde(default)]
    user: TokenSubject,
    #[serde(default)]
    project: Option<TokenSubject>,
    #[serde(default)]
    domain: Option<TokenSubject>,
    #[serde(default)]
    roles: Vec<TokenSubject>,
    #[serde(default)]
    catalog: Vec<CatalogService>,
}

impl Token {
    /// Build a token from the `X-Subject-Token` header and the JSON body of the answer.
    pub fn from_response(value: String, body: &[u8], serial: u64) -> serde_json::Result<Self> {
        let parsed: TokenBody = serde_json::from_slice(body)?;
        let t = parsed.token;
        Ok(Token {
            value: SecretString::from(value),
            expires_at: t.expires_at,
            issued_at: t.issued_at,
            user: t.user,
            project: t.project,
            domain: t.domain,
            roles: t.roles.into_iter().map(|r| r.name).collect(),
            catalog: t.catalog,
            serial,
        })
    }

    /// The same token with another secret (to inject a token Keystone never issued).
    pub(crate) fn with_secret(&self, value: &str) -> Token {
        Token {
            value: SecretString::from(value.to_owned()),
            ..self.clone()
        }
    }

    /// The token string, for the `X-Auth-Token` header.
    pub fn secret(&self) -> &str {
        self.value.expose_secret()
    }

    /// How long before expiry the token is renewed: a fifth of its lifetime, at most 60 s.
    pub fn refresh_margin(&self) -> chrono::Duration {
        let max = chrono::Duration::seconds(60);
        match self.issued_at {
            Some(issued) => ((self.expires_at - issued) / 5).min(max),
            None => max,
        }
    }

    /// Whether the token should be renewed before use at `now`.
    pub fn needs_refresh(&self, now: DateTime<Utc>) -> bool {
        now + self.refresh_margin() >= self.expires_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn password() -> Credentials {
        Credentials::Password {
            user: NamedRef::Name {
                name: "kuryr".into(),
                domain: DomainRef::Name("Default".into()),
            },
            password: SecretString::from("s3cret"),
        }
    }

    #[test]
    fn v3_url_is_normalised() {
        assert_eq!(
            v3_url("http://127.0.0.1:5000").unwrap().as_str(),
            "http://127.0.0.1:5000/v3"
        );
        assert_eq!(
            v3_url("http://127.0.0.1:5000/v3/").unwrap().as_str(),
            "http://127.0.0.1:5000/v3"
        );
        assert_eq!(
            v3_url("https://cloud/identity").unwrap().as_str(),
            "https://cloud/identity/v3"
        );
        assert!(v3_url("http://h:5000/v2.0")
            .unwrap_err()
            .to_string()
            .contains("v2.0"));
        assert!(v3_url("ftp://h").is_err());
        assert!(v3_url("not a url").is_err());
    }

    #[test]
    fn tokens_url() {
        let auth = KeystoneAuth::new("http://h:5000/", password(), Scope::Unscoped).unwrap();
        assert_eq!(auth.tokens_url().as_str(), "http://h:5000/v3/auth/tokens");
    }

    #[test]
    fn password_project_scope_body() {
        let auth = KeystoneAuth::new(
            "http://h:5000",
            password(),
            Scope::Project(NamedRef::Name {
                name: "service".into(),
                domain: DomainRef::Id("default".into()),
            }),
        )
        .unwrap();
        assert_eq!(
            auth.request_body().unwrap(),
            json!({"auth": {
                "identity": {"methods": ["password"], "password": {"user": {
                    "name": "kuryr", "domain": {"name": "Default"}, "password": "s3cret"}}},
                "scope": {"project": {"name": "service", "domain": {"id": "default"}}}
            }})
        );
    }

    #[test]
    fn user_id_domain_and_system_scopes() {
        let creds = Credentials::Password {
            user: NamedRef::Id("u1".into()),
            password: SecretString::from("p"),
        };
        let auth = KeystoneAuth::new(
            "http://h",
            creds.clone(),
            Scope::Domain(DomainRef::Name("d".into())),
        )
        .unwrap();
        let body = auth.request_body().unwrap();
        assert_eq!(
            body["auth"]["identity"]["password"]["user"],
            json!({"id": "u1", "password": "p"})
        );
        assert_eq!(body["auth"]["scope"], json!({"domain": {"name": "d"}}));
        let auth = KeystoneAuth::new("http://h", creds, Scope::System).unwrap();
        assert_eq!(
            auth.request_body().unwrap()["auth"]["scope"],
            json!({"system": {"all": true}})
        );
    }

    #[test]
    fn token_and_application_credential_bodies() {
        let auth = KeystoneAuth::new(
            "http://h",
            Credentials::Token {
                token: SecretString::from("tok"),
            },
            Scope::Project(NamedRef::Id("p1".into())),
        )
        .unwrap();
        let body = auth.request_body().unwrap();
        assert_eq!(
            body["auth"]["identity"],
            json!({"methods": ["token"], "token": {"id": "tok"}})
        );
        assert_eq!(body["auth"]["scope"], json!({"project": {"id": "p1"}}));

        let auth = KeystoneAuth::new(
            "http://h",
            Credentials::ApplicationCredential {
                id: None,
                name: Some("ci".into()),
                user: Some(NamedRef::Id("u1".into())),
                secret: SecretString::from("sec"),
            },
            Scope::Project(NamedRef::Id("ignored".into())),
        )
        .unwrap();
        let body = auth.request_body().unwrap();
        assert_eq!(
            body["auth"],
            json!({"identity": {"methods": ["application_credential"], "application_credential": {
                "name": "ci", "user": {"id": "u1"}, "secret": "sec"}}})
        );

        let auth = KeystoneAuth::new(
            "http://h",
            Credentials::ApplicationCredential {
                id: None,
                name: Some("ci".into()),
                user: None,
                secret: SecretString::from("sec"),
            },
            Scope::Unscoped,
        )
        .unwrap();
        assert!(auth.request_body().is_err());
    }

    #[test]
    fn debug_output_hides_secrets() {
        let text = format!("{:?}", password());
        assert!(!text.contains("s3cret"), "{text}");
    }

    fn catalog() -> Vec<CatalogService> {
        serde_json::from_value(json!([
            {"type": "identity", "endpoints": [{"interface": "public", "region": "RegionOne", "region_id": "RegionOne", "url": "http://h:5000/v3"}]},
            {"type": "network", "name": "neutron", "endpoints": [
                {"interface": "public", "region": "RegionOne", "region_id": "RegionOne", "url": "http://pub:9696"},
                {"interface": "internal", "region": "RegionOne", "region_id": "RegionOne", "url": "http://int:9696"},
                {"interface": "public", "region": "RegionTwo", "region_id": "RegionTwo", "url": "http://two:9696"}
            ]}
        ]))
        .unwrap()
    }

    #[test]
    fn endpoint_lookup_by_interface_and_region() {
        let mut filter = EndpointFilter::new("network");
        assert_eq!(
            find_endpoint(&catalog(), &filter).unwrap().as_str(),
            "http://pub:9696/"
        );
        filter.interface = "internal".into();
        assert_eq!(
            find_endpoint(&catalog(), &filter).unwrap().as_str(),
            "http://int:9696/"
        );
        filter.interface = "public".into();
        filter.region = Some("RegionTwo".into());
        assert_eq!(
            find_endpoint(&catalog(), &filter).unwrap().as_str(),
            "http://two:9696/"
        );
        filter.interface = "admin".into();
        let err = find_endpoint(&catalog(), &filter).unwrap_err();
        match &err {
            Error::EndpointNotFound { available, .. } => assert_eq!(available.len(), 3),
            other => panic!("unexpected {other:?}"),
        }
        assert!(err
            .to_string()
            .contains("interface admin in region RegionTwo"));
        filter.endpoint_override = Some(Url::parse("http://over:1").unwrap());
        assert_eq!(
            find_endpoint(&catalog(), &filter).unwrap().as_str(),
            "http://over:1/"
        );
    }

    #[test]
    fn interface_spellings() {
        assert_eq!(normalize_interface("publicURL").unwrap(), "public");
        assert_eq!(normalize_interface("Internal").unwrap(), "internal");
        assert!(normalize_interface("private").is_err());
    }

    #[test]
    fn token_parsing_and_refresh_margin() {
        let body = json!({"token": {
            "expires_at": "2026-11-23T10:01:00.000000Z",
            "issued_at": "2026-11-23T10:00:00.000000Z",
            "user": {"id": "u1", "name": "kuryr", "domain": {"id": "default"}},
            "project": {"id": "p1", "name": "service"},
            "roles": [{"id": "r1", "name": "admin"}],
            "catalog": []
        }});
        let token = Token::from_response("abc".into(), body.to_string().as_bytes(), 7).unwrap();
        assert_eq!(token.secret(), "abc");
        assert_eq!(token.roles, vec!["admin"]);
        assert_eq!(token.project.as_ref().unwrap().name, "service");
        assert_eq!(token.refresh_margin(), chrono::Duration::seconds(12));
        let issued = token.issued_at.unwrap();
        assert!(!token.needs_refresh(issued + chrono::Duration::seconds(47)));
        assert!(token.needs_refresh(issued + chrono::Duration::seconds(48)));
        assert!(!format!("{token:?}").contains("abc"));
    }
}
