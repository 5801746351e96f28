//! Errors of the OpenStack client.
//!
//! Each variant is one way a call can fail, carries what an operator needs to act on it, and
//! keeps its cause as `source` (the message does not repeat the cause; print the chain).
//! [`Error::hint`] says what to do next.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Result of every client call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which OpenStack service an error came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Keystone,
    Neutron,
}

impl Service {
    /// The service's name in lower case, as a metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Service::Keystone => "keystone",
            Service::Neutron => "neutron",
        }
    }
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Service::Keystone => "Keystone",
            Service::Neutron => "Neutron",
        })
    }
}

/// An error answer (non-2xx) from a service, with the service's own error type and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub service: Service,
    pub method: String,
    /// Path of the request, without query string (which may carry filter values).
    pub path: String,
    pub status: u16,
    /// `NeutronError.type` (e.g. `IpAddressAlreadyAllocated`) or Keystone's error title.
    pub kind: Option<String>,
    pub message: String,
    /// `X-Openstack-Request-Id`, to find the request in the service's log.
    pub request_id: Option<String>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {} answered {}",
            self.service, self.method, self.path, self.status
        )?;
        if let Some(kind) = &self.kind {
            write!(f, " {kind}")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if let Some(id) = &self.request_id {
            write!(f, " (request {id})")?;
        }
        Ok(())
    }
}

/// Cloneable (causes are shared), so that a failure can be handed to every caller that
/// waited for the same attempt.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// No connection could be made (refused, unreachable, DNS, TLS handshake).
    #[error("cannot connect to {service} at {url}")]
    Connect {
        service: Service,
        url: String,
        #[source]
        source: Arc<reqwest::Error>,
    },

    /// The service accepted the connection but did not answer in time.
    #[error("{service} at {url} did not answer within {timeout:?}")]
    Timeout {
        service: Service,
        url: String,
        timeout: Duration,
    },

    /// Keystone refused the credentials.
    #[error("Keystone at {auth_url} refused the credentials of {who} ({status}): {message}")]
    Unauthorized {
        auth_url: String,
        who: String,
        status: u16,
        message: String,
    },

    /// The service answered with an error status.
    #[error("{0}")]
    Api(Box<ApiError>),

    /// The token's service catalog has no matching endpoint.
    #[error(
        "the service catalog has no {service_type} endpoint for interface {interface}{}",
        region.as_deref().map(|r| format!(" in region {r}")).unwrap_or_default()
    )]
    EndpointNotFound {
        service_type: String,
        interface: String,
        region: Option<String>,
        /// `interface@region url` of every endpoint of that type, to show what exists.
        available: Vec<String>,
    },

    /// A TLS file could not be read or used.
    #[error("invalid TLS setting {option} = {value}")]
    Tls {
        option: &'static str,
        value: String,
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },

    /// The answer was not what the API documents.
    #[error("unexpected answer from {service} {path}")]
    Decode {
        service: Service,
        path: String,
        #[source]
        source: Arc<serde_json::Error>,
    },

    /// The caller asked for something the API cannot express (checked before sending).
    #[error("invalid request: {0}")]
    InvalidRequest(String),

    /// The client was built from settings that cannot work.
    #[error("invalid client settings: {0}")]
    InvalidSettings(String),

    /// The service answered against its own API (e.g. a next link that loops).
    #[error("{service} broke its API: {message}")]
    Protocol { service: Service, message: String },

    /// Another transport-level failure (e.g. the connection broke mid-answer).
    #[error("request to {service} at {url} failed")]
    Transport {
        service: Service,
        url: String,
        #[source]
        source: Arc<reqwest::Error>,
    },
}

impl Error {
    /// HTTP status of an API error, if this is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api(e) => Some(e.status),
            Error::Unauthorized { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// `NeutronError.type` of an API error, if any.
    pub fn kind(&self) -> Option<&str> {
        match self {
            Error::Api(e) => e.kind.as_deref(),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    pub fn is_conflict(&self) -> bool {
        self.status() == Some(409)
    }

    /// An `If-Match` revision check failed: someone else changed the resource first.
    pub fn is_precondition_failed(&self) -> bool {
        self.status() == Some(412)
    }

    /// True for failures that a later attempt may not hit (service down, overloaded, slow).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Connect { .. } | Error::Timeout { .. } | Error::Transport { .. }
        ) || matches!(self.status(), Some(502..=504))
    }

    /// True when a request was sent and its outcome is unknown: no (whole) answer, or a
    /// status in `statuses` (a proxy's 502/504, a 500 after a partial commit).
    pub fn may_have_acted(&self, statuses: &[u16]) -> bool {
        matches!(self, Error::Timeout { .. } | Error::Transport { .. })
            || self.status().is_some_and(|s| statuses.contains(&s))
    }

    /// What the operator can do about it.
    pub fn hint(&self) -> String {
        match self {
            Error::Protocol { service, .. } => format!(
                "{service} answered against its API; report it with the request id from its log"
            ),
            Error::Connect { service, .. } => format!(
                "check that {service} is running and that its URL is right \
                 (Keystone: [neutron] auth_url; Neutron: the catalog's network endpoint or \
                 [neutron] endpoint_override)"
            ),
            Error::Timeout { .. } => "the service is hung or overloaded; if it is only slow, \
                 raise [neutron] timeout"
                .into(),
            Error::Unauthorized { .. } => "check [neutron] auth_type, username (or user_id), \
                 password, user_domain_name, project_name and project_domain_name, or the \
                 OS_* variables that override them"
                .into(),
            Error::Api(e) if e.status == 401 => "the token was refused; check that Keystone and \
                 Neutron's [keystone_authtoken] agree, and the clocks"
                .into(),
            Error::Api(e) if e.status == 403 => "the policy refused this call to the user; give \
                 kuryr's user the admin role (or one the policy accepts) in its project"
                .into(),
            Error::Api(e) if e.status == 404 => "the resource does not exist (any more)".into(),
            Error::Api(e) if e.status == 409 => {
                "the resource is in use or conflicts with another one; see the message".into()
            }
            Error::Api(e) if e.status >= 500 => format!(
                "{} failed internally; look for the request id in its log",
                e.service
            ),
            Error::Api(_) => "see the message for the offending field".into(),
            Error::EndpointNotFound { available, .. } if available.is_empty() => {
                "register a network service and endpoint in Keystone, or set \
                 [neutron] endpoint_override"
                    .into()
            }
            Error::EndpointNotFound { available, .. } => format!(
                "set [neutron] endpoint_type and region_name to one of: {}",
                available.join(", ")
            ),
            Error::Tls { option, .. } => {
                format!("check that [neutron] {option} names a readable PEM file")
            }
            Error::Decode { .. } => {
                "the service speaks another API version than expected; check the endpoint URL"
                    .into()
            }
            Error::InvalidRequest(_) | Error::InvalidSettings(_) => {
                "fix the value named in the message".into()
            }
            Error::Transport { .. } => "the connection broke; retry, and check the service's \
                 log if it keeps happening"
                .into(),
        }
    }
}

/// Error type and message from a Neutron (`NeutronError`) or Keystone (`error`) error body.
pub(crate) fn parse_error_body(body: &[u8]) -> (Option<String>, String) {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        if let Some(ne) = value.get("NeutronError") {
            let kind = ne.get("type").and_then(Value::as_str).map(str::to_owned);
            let mut message = ne
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            if let Some(detail) = ne.get("detail").and_then(Value::as_str) {
                if !detail.is_empty() {
                    message = format!("{message} ({detail})");
                }
            }
            return (kind, message);
        }
        if let Some(e) = value.get("error") {
            let kind = e.get("title").and_then(Value::as_str).map(str::to_owned);
            let message = e
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            return (kind, message);
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let mut message: String = text.chars().take(400).collect();
    if text.chars().count() > 400 {
        message.push('…');
    }
    (None, message)
}

/// The [`Error::Api`] for an error answer.
pub(crate) fn api_error(
    service: Service,
    method: &Method,
    url: &url::Url,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Error {
    let (kind, message) = parse_error_body(body);
    Error::Api(Box::new(ApiError {
        service,
        method: method.to_string(),
        path: url.path().to_string(),
        status: status.as_u16(),
        kind,
        message,
        request_id: headers
            .get("x-openstack-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    }))
}

/// The message of an error and of all its causes, joined with ": ".
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let msg = e.to_string();
        if !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        cur = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neutron_error_body() {
        let body = br#"{"NeutronError": {"type": "NetworkNotFound", "message": "Network x could not be found.", "detail": ""}}"#;
        assert_eq!(
            parse_error_body(body),
            (
                Some("NetworkNotFound".into()),
                "Network x could not be found.".into()
            )
        );
    }

    #[test]
    fn keystone_error_body() {
        let body = br#"{"error": {"code": 401, "message": "The request you have made requires authentication.", "title": "Unauthorized"}}"#;
        assert_eq!(
            parse_error_body(body),
            (
                Some("Unauthorized".into()),
                "The request you have made requires authentication.".into()
            )
        );
    }

    #[test]
    fn plain_text_error_body_is_truncated() {
        let body = "x".repeat(1000);
        let (kind, message) = parse_error_body(body.as_bytes());
        assert_eq!(kind, None);
        assert_eq!(message.chars().count(), 401);
    }
}
