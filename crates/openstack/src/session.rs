//! A session: one HTTP client, one cached Keystone token shared by every caller, and the one
//! place where requests are sent.
//!
//! Request flow ([`Session::send`]):
//! 1. get the token: the cached one, or a new one when it is about to expire (callers that
//!    arrive meanwhile wait for that single refresh instead of authenticating each);
//! 2. resolve the service endpoint from the token's catalog (or the override);
//! 3. send; an idempotent request is retried with backoff on a connection error or a 503,
//!    within the request timeout;
//! 4. on a 401, drop the token, authenticate once more and resend once;
//! 5. turn an error status into [`Error::Api`] with the service's error type and message.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::Mutex;
use url::Url;

use crate::auth::{find_endpoint, EndpointFilter, KeystoneAuth, Token};
use crate::error::{ApiError, Error, Result, Service};
use crate::transport::{backoff, build_client, is_idempotent, HttpOptions};

/// How the session authenticates.
#[derive(Debug, Clone)]
pub enum AuthMethod {
    Keystone(KeystoneAuth),
    /// No Keystone (Neutron with `auth_strategy = noauth`): requests go to `endpoint` and
    /// creates carry `project_id` when given.
    NoAuth {
        endpoint: Url,
        project_id: Option<String>,
    },
}

/// A request to a service, before it is sent.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// Path below the service endpoint, e.g. `v2.0/ports`.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<Value>,
    pub headers: HeaderMap,
}

impl Request {
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Request {
            method,
            path: path.into(),
            query: Vec::new(),
            body: None,
            headers: HeaderMap::new(),
        }
    }

    pub fn query(mut self, query: Vec<(String, String)>) -> Self {
        self.query = query;
        self
    }

    pub fn json(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    pub fn header(mut self, name: &'static str, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }
}

/// A successful answer.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

struct Inner {
    http: reqwest::Client,
    auth: AuthMethod,
    options: HttpOptions,
    token: Mutex<Option<Arc<Token>>>,
    tokens_issued: AtomicU64,
}

/// A cheap-to-clone handle on one authenticated connection to OpenStack.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("auth", &self.inner.auth)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Build a session. No request is sent until the first call.
    ///
    /// # Errors
    /// [`Error::Tls`] when a TLS file cannot be read, [`Error::InvalidSettings`] otherwise.
    pub fn new(auth: AuthMethod, options: HttpOptions) -> Result<Self> {
        let http = build_client(&options)?;
        Ok(Session {
            inner: Arc::new(Inner {
                http,
                auth,
                options,
                token: Mutex::new(None),
                tokens_issued: AtomicU64::new(0),
            }),
        })
    }

    pub fn auth(&self) -> &AuthMethod {
        &self.inner.auth
    }

    pub fn options(&self) -> &HttpOptions {
        &self.inner.options
    }

    /// How many tokens this session has obtained from Keystone so far.
    pub fn tokens_issued(&self) -> u64 {
        self.inner.tokens_issued.load(Ordering::Relaxed)
    }

    /// The project id requests act in: the token's project, or the no-auth project.
    pub async fn project_id(&self) -> Result<Option<String>> {
        match &self.inner.auth {
            AuthMethod::NoAuth { project_id, .. } => Ok(project_id.clone()),
            AuthMethod::Keystone(_) => {
                Ok(self.token().await?.project.as_ref().map(|p| p.id.clone()))
            }
        }
    }

    /// A valid token, renewed first when it is close to expiry.
    ///
    /// # Errors
    /// [`Error::Unauthorized`] when Keystone refuses the credentials, connection errors when
    /// Keystone cannot be reached, and [`Error::InvalidSettings`] in no-auth mode.
    pub async fn token(&self) -> Result<Arc<Token>> {
        let mut slot = self.inner.token.lock().await;
        if let Some(token) = slot.as_ref() {
            if !token.needs_refresh(chrono::Utc::now()) {
                return Ok(token.clone());
            }
            tracing::debug!(expires_at = %token.expires_at, "renewing the Keystone token before it expires");
        }
        // Holding the lock while authenticating makes concurrent callers wait for this one
        // request and then share its token.
        let token = Arc::new(self.authenticate().await?);
        *slot = Some(token.clone());
        Ok(token)
    }

    /// Forget `stale` (if it is still the cached token) so that the next call authenticates.
    pub async fn invalidate_token(&self, stale: &Token) {
        let mut slot = self.inner.token.lock().await;
        if slot.as_ref().is_some_and(|t| t.serial == stale.serial) {
            *slot = None;
        }
    }

    /// Replace the cached token with one that Keystone never issued: a fault that the real
    /// services cannot be made to produce on demand, to test the 401 path.
    #[doc(hidden)]
    pub async fn inject_invalid_token_for_tests(&self) {
        let mut slot = self.inner.token.lock().await;
        if let Some(current) = slot.as_ref() {
            *slot = Some(Arc::new(
                current.with_secret("gAAAAABinvalid-token-injected-by-a-test"),
            ));
        }
    }

    async fn authenticate(&self) -> Result<Token> {
        let AuthMethod::Keystone(auth) = &self.inner.auth else {
            return Err(Error::InvalidSettings(
                "no-auth mode has no Keystone token".into(),
            ));
        };
        let url = auth.tokens_url();
        let body = auth.request_body()?;
        let started = Instant::now();
        let resp = self
            // Asking for a token changes nothing in Keystone: safe to retry like a GET.
            .send_with_retries(Service::Keystone, Method::POST, url.clone(), true, |b| {
                b.json(&body)
            })
            .await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = read_body(Service::Keystone, &url, resp).await?;
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let (_, message) = parse_error_body(&bytes);
            return Err(Error::Unauthorized {
                auth_url: auth.auth_url.to_string(),
                who: auth.credentials.describe(),
                status: status.as_u16(),
                message,
            });
        }
        if !status.is_success() {
            return Err(api_error(
                Service::Keystone,
                &Method::POST,
                &url,
                status,
                &headers,
                &bytes,
            ));
        }
        let value = headers
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Error::Decode {
                service: Service::Keystone,
                path: url.path().to_string(),
                source: serde::de::Error::custom("the answer has no X-Subject-Token header"),
            })?
            .to_string();
        let serial = self.inner.tokens_issued.fetch_add(1, Ordering::Relaxed) + 1;
        let token =
            Token::from_response(value, &bytes, serial).map_err(|source| Error::Decode {
                service: Service::Keystone,
                path: url.path().to_string(),
                source,
            })?;
        tracing::debug!(
            user = %token.user.name,
            project = token.project.as_ref().map(|p| p.name.as_str()).unwrap_or("-"),
            expires_at = %token.expires_at,
            took_ms = started.elapsed().as_millis() as u64,
            "authenticated with Keystone"
        );
        Ok(token)
    }

    /// The base URL of a service, from the catalog or the override.
    ///
    /// # Errors
    /// [`Error::EndpointNotFound`] when the catalog has no such endpoint, plus the errors of
    /// [`Session::token`].
    pub async fn endpoint(&self, filter: &EndpointFilter) -> Result<Url> {
        match &self.inner.auth {
            AuthMethod::NoAuth { endpoint, .. } => Ok(filter
                .endpoint_override
                .clone()
                .unwrap_or_else(|| endpoint.clone())),
            AuthMethod::Keystone(_) => {
                if let Some(url) = &filter.endpoint_override {
                    return Ok(url.clone());
                }
                find_endpoint(&self.token().await?.catalog, filter)
            }
        }
    }

    /// Send a request to the service that `filter` selects, authenticated, with retries.
    ///
    /// # Errors
    /// Connection, timeout, authentication and [`Error::Api`] errors as described above.
    pub async fn send(
        &self,
        service: Service,
        filter: &EndpointFilter,
        req: Request,
    ) -> Result<Response> {
        let mut reauthenticated = false;
        loop {
            let token = match &self.inner.auth {
                AuthMethod::Keystone(_) => Some(self.token().await?),
                AuthMethod::NoAuth { .. } => None,
            };
            let base = match (&filter.endpoint_override, &token) {
                (Some(url), _) => url.clone(),
                (None, Some(token)) => find_endpoint(&token.catalog, filter)?,
                (None, None) => self.endpoint(filter).await?,
            };
            let url = join_url(&base, &req.path)?;
            let no_auth_project = match &self.inner.auth {
                AuthMethod::NoAuth { project_id, .. } => project_id.clone(),
                AuthMethod::Keystone(_) => None,
            };
            let retryable = is_idempotent(&req.method);
            let resp = self
                .send_with_retries(
                    service,
                    req.method.clone(),
                    url.clone(),
                    retryable,
                    |mut b| {
                        if !req.query.is_empty() {
                            b = b.query(&req.query);
                        }
                        if let Some(token) = &token {
                            b = b.header("X-Auth-Token", token.secret());
                        }
                        if let Some(project) = &no_auth_project {
                            b = b.header("X-Project-Id", project.as_str());
                        }
                        for (name, value) in &req.headers {
                            b = b.header(name, value);
                        }
                        if let Some(body) = &req.body {
                            b = b.json(body);
                        }
                        b
                    },
                )
                .await?;
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED && !reauthenticated {
                if let Some(token) = &token {
                    tracing::info!(
                        "{service} refused the token (401); authenticating again and resending once"
                    );
                    self.invalidate_token(token).await;
                    reauthenticated = true;
                    continue;
                }
            }
            let headers = resp.headers().clone();
            let body = read_body(service, &url, resp).await?;
            if !status.is_success() {
                return Err(api_error(
                    service,
                    &req.method,
                    &url,
                    status,
                    &headers,
                    &body,
                ));
            }
            return Ok(Response {
                status,
                headers,
                body,
            });
        }
    }

    /// Send one request; a `retryable` one is sent again on connection errors and 503, with
    /// exponential backoff, within the request timeout.
    async fn send_with_retries(
        &self,
        service: Service,
        method: Method,
        url: Url,
        retryable: bool,
        build: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response> {
        let opts = &self.inner.options;
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            let sent = Instant::now();
            let result = build(self.inner.http.request(method.clone(), url.clone()))
                .send()
                .await;
            let delay = backoff(opts.retry_delay, attempt);
            let may_retry = retryable
                && attempt < opts.retries
                && started.elapsed() + delay < opts.request_timeout;
            match result {
                Ok(resp) if resp.status() == StatusCode::SERVICE_UNAVAILABLE && may_retry => {
                    tracing::warn!(%service, %method, path = url.path(), attempt, "503, retrying in {delay:?}");
                }
                Ok(resp) => {
                    tracing::debug!(
                        %service, %method, path = url.path(), status = resp.status().as_u16(),
                        took_ms = sent.elapsed().as_millis() as u64, "request"
                    );
                    return Ok(resp);
                }
                Err(err) if err.is_timeout() => {
                    let timeout = if err.is_connect() {
                        opts.connect_timeout
                    } else {
                        opts.request_timeout
                    };
                    return Err(Error::Timeout {
                        service,
                        url: strip_query(&url),
                        timeout,
                    });
                }
                Err(err) if err.is_connect() && may_retry => {
                    tracing::warn!(%service, %method, path = url.path(), attempt, "cannot connect, retrying in {delay:?}: {err}");
                }
                Err(source) if source.is_connect() => {
                    return Err(Error::Connect {
                        service,
                        url: strip_query(&url),
                        source,
                    })
                }
                Err(source) => {
                    return Err(Error::Transport {
                        service,
                        url: strip_query(&url),
                        source,
                    })
                }
            }
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }
}

fn strip_query(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.to_string()
}

/// `base` + `path`, keeping the base's own path (`http://h/network` + `v2.0/ports`).
pub(crate) fn join_url(base: &Url, path: &str) -> Result<Url> {
    let mut url = base.clone();
    let joined = format!(
        "{}/{}",
        base.path().trim_end_matches('/'),
        path.trim_start_matches('/')
    );
    url.set_path(&joined);
    url.set_query(None);
    Ok(url)
}

async fn read_body(service: Service, url: &Url, resp: reqwest::Response) -> Result<Vec<u8>> {
    resp.bytes().await.map(|b| b.to_vec()).map_err(|source| {
        if source.is_timeout() {
            Error::Timeout {
                service,
                url: strip_query(url),
                timeout: Duration::ZERO,
            }
        } else {
            Error::Transport {
                service,
                url: strip_query(url),
                source,
            }
        }
    })
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

fn api_error(
    service: Service,
    method: &Method,
    url: &Url,
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

    #[test]
    fn url_joining_keeps_base_path() {
        let base = Url::parse("http://h:9696").unwrap();
        assert_eq!(
            join_url(&base, "v2.0/ports").unwrap().as_str(),
            "http://h:9696/v2.0/ports"
        );
        let base = Url::parse("https://cloud/network/").unwrap();
        assert_eq!(
            join_url(&base, "/v2.0/ports").unwrap().as_str(),
            "https://cloud/network/v2.0/ports"
        );
    }
}
