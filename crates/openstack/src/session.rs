//! A session: one HTTP client, one cached Keystone token shared by every caller, and the one
//! place where requests are sent.
//!
//! Request flow ([`Session::send`]):
//! 1. get the token: the cached one, or a new one when it is about to expire (callers that
//!    arrive meanwhile wait for that single refresh instead of authenticating each; if the
//!    refresh fails they all get its error at once, and a token that is still valid keeps
//!    being used);
//! 2. resolve the service endpoint from the token's catalog (or the override);
//! 3. send; a request that found no connection is sent again with backoff, and so is an
//!    idempotent one whose answer was lost, timed out or was a 500, 502, 503 or 504, as
//!    long as the retry starts within the retry timeout;
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
use crate::error::{api_error, parse_error_body, Error, Result, Service};
use crate::transport::{backoff, build_client, is_idempotent, may_retry, HttpOptions, Outcome};

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
    /// Whether sending it twice has the effect of sending it once (GET, PUT of a value,
    /// DELETE); action calls such as `add_router_interface` are not, although they are PUTs.
    pub idempotent: bool,
}

impl Request {
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Request {
            idempotent: is_idempotent(&method),
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

    /// Mark the request as not safe to send twice, whatever its method.
    pub fn not_idempotent(mut self) -> Self {
        self.idempotent = false;
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

/// The cached token, or the failure of the last attempt to get one.
#[derive(Default)]
struct TokenSlot {
    token: Option<Arc<Token>>,
    /// When the last refresh failed, and how: callers that were already waiting get this.
    failure: Option<(Instant, Error)>,
}

struct Inner {
    http: reqwest::Client,
    auth: AuthMethod,
    options: HttpOptions,
    slot: Mutex<TokenSlot>,
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
                slot: Mutex::new(TokenSlot::default()),
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
        let asked = Instant::now();
        // Holding the lock while authenticating makes concurrent callers wait for this one
        // request and then share its token.
        let mut slot = self.inner.slot.lock().await;
        let now = chrono::Utc::now();
        if let Some(token) = &slot.token {
            if !token.needs_refresh(now) {
                return Ok(token.clone());
            }
        }
        if let Some((at, err)) = &slot.failure {
            if *at >= asked {
                // Failed while this caller waited: don't make it try again at once.
                return self.fallback(&slot, now, err.clone());
            }
        }
        match self.authenticate().await {
            Ok(token) => {
                let token = Arc::new(token);
                slot.token = Some(token.clone());
                slot.failure = None;
                Ok(token)
            }
            Err(err) => {
                slot.failure = Some((Instant::now(), err.clone()));
                self.fallback(&slot, now, err)
            }
        }
    }

    /// The cached token if it has not expired yet (renewal failed early), else `err`.
    fn fallback(
        &self,
        slot: &TokenSlot,
        now: chrono::DateTime<chrono::Utc>,
        err: Error,
    ) -> Result<Arc<Token>> {
        match &slot.token {
            Some(token) if token.expires_at > now + chrono::Duration::seconds(1) => {
                tracing::warn!(
                    expires_at = %token.expires_at,
                    "cannot renew the Keystone token ({}); using the current one until it expires",
                    crate::error::chain(&err)
                );
                Ok(token.clone())
            }
            _ => Err(err),
        }
    }

    /// Forget `stale` (if it is still the cached token) so that the next call authenticates.
    pub async fn invalidate_token(&self, stale: &Token) {
        let mut slot = self.inner.slot.lock().await;
        if slot
            .token
            .as_ref()
            .is_some_and(|t| t.serial == stale.serial)
        {
            slot.token = None;
        }
    }

    /// Replace the cached token with one that Keystone never issued: a fault that the real
    /// services cannot be made to produce on demand, to test the 401 path.
    #[doc(hidden)]
    pub async fn inject_invalid_token_for_tests(&self) {
        let mut slot = self.inner.slot.lock().await;
        if let Some(current) = &slot.token {
            let bogus = current.with_secret("gAAAAABinvalid-token-injected-by-a-test");
            slot.token = Some(Arc::new(bogus));
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
        // Asking for a token changes nothing in Keystone: safe to send again like a GET.
        let resp = self
            .send_with_retries(Service::Keystone, Method::POST, url.clone(), true, |b| {
                b.json(&body)
            })
            .await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = self.read_body(Service::Keystone, &url, resp).await?;
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
            .ok_or_else(|| Error::Protocol {
                service: Service::Keystone,
                message: "the token answer has no X-Subject-Token header".into(),
            })?
            .to_string();
        let serial = self.inner.tokens_issued.fetch_add(1, Ordering::Relaxed) + 1;
        let token =
            Token::from_response(value, &bytes, serial).map_err(|source| Error::Decode {
                service: Service::Keystone,
                path: url.path().to_string(),
                source: Arc::new(source),
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
        let token = match &self.inner.auth {
            AuthMethod::Keystone(_) if filter.endpoint_override.is_none() => {
                Some(self.token().await?)
            }
            _ => None,
        };
        self.base_url(filter, token.as_deref())
    }

    fn base_url(&self, filter: &EndpointFilter, token: Option<&Token>) -> Result<Url> {
        if let Some(url) = &filter.endpoint_override {
            return Ok(url.clone());
        }
        match (&self.inner.auth, token) {
            (AuthMethod::NoAuth { endpoint, .. }, _) => Ok(endpoint.clone()),
            (AuthMethod::Keystone(_), Some(token)) => find_endpoint(&token.catalog, filter),
            (AuthMethod::Keystone(_), None) => Err(Error::InvalidSettings(
                "a Keystone session needs a token to find an endpoint".into(),
            )),
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
        let no_auth_project = match &self.inner.auth {
            AuthMethod::NoAuth { project_id, .. } => project_id.clone(),
            AuthMethod::Keystone(_) => None,
        };
        let mut reauthenticated = false;
        loop {
            let token = match &self.inner.auth {
                AuthMethod::Keystone(_) => Some(self.token().await?),
                AuthMethod::NoAuth { .. } => None,
            };
            let url = join_url(&self.base_url(filter, token.as_deref())?, &req.path);
            let token_header = token
                .as_ref()
                .map(|t| {
                    HeaderValue::from_str(t.secret()).map(|mut v| {
                        // Keeps the token out of any debug output of the request.
                        v.set_sensitive(true);
                        v
                    })
                })
                .transpose()
                .map_err(|_| Error::Protocol {
                    service: Service::Keystone,
                    message: "the token is not a valid HTTP header value".into(),
                })?;
            let resp = self
                .send_with_retries(
                    service,
                    req.method.clone(),
                    url.clone(),
                    req.idempotent,
                    |mut b| {
                        if !req.query.is_empty() {
                            b = b.query(&req.query);
                        }
                        if let Some(value) = &token_header {
                            b = b.header("X-Auth-Token", value.clone());
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
                    tracing::info!("{service} refused the token (401); authenticating again and resending once");
                    self.invalidate_token(token).await;
                    reauthenticated = true;
                    continue;
                }
            }
            if status == StatusCode::FORBIDDEN {
                if let Some(token) = &token {
                    // What the policy judged (never the token itself), to tell a missing role
                    // from a token Keystone issued without the expected scope.
                    tracing::warn!(
                        user = %token.user.name,
                        project = ?token.project.as_ref().map(|p| &p.name),
                        domain = ?token.domain.as_ref().map(|d| &d.name),
                        roles = ?token.roles,
                        token_serial = token.serial,
                        expires_at = %token.expires_at,
                        "{service} refused {} {} by policy (403)",
                        req.method,
                        req.path
                    );
                }
            }
            let headers = resp.headers().clone();
            let body = self.read_body(service, &url, resp).await?;
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

    /// Send one request, and again after a failure that a later attempt may not meet
    /// ([`may_retry`]): with exponential backoff (or the service's `Retry-After`), while the
    /// retry can start within the retry timeout. `idempotent` says whether sending it twice
    /// does no harm.
    async fn send_with_retries(
        &self,
        service: Service,
        method: Method,
        url: Url,
        idempotent: bool,
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
            crate::accounting::record(&crate::accounting::RequestSeen {
                service,
                method: method.as_str(),
                resource: crate::accounting::resource(url.path()),
                status: result.as_ref().ok().map(|r| r.status().as_u16()),
                request_id: result.as_ref().ok().and_then(|r| {
                    r.headers()
                        .get("x-openstack-request-id")
                        .and_then(|v| v.to_str().ok())
                }),
                took: sent.elapsed(),
            });
            let mut delay = backoff(opts.retry_delay, attempt);
            let outcome = match &result {
                Ok(resp) => {
                    if let Some(after) = retry_after(resp.headers()) {
                        delay = after;
                    }
                    if opts.retriable_statuses.contains(&resp.status().as_u16()) {
                        Outcome::RetriableStatus
                    } else {
                        Outcome::Answered
                    }
                }
                // reqwest marks a connect timeout as both: it is a connection failure.
                Err(err) if err.is_connect() => Outcome::NotConnected,
                Err(_) => Outcome::AnswerLost,
            };
            let retry = may_retry(opts, idempotent, outcome, attempt)
                && started.elapsed() + delay < opts.retry_timeout;
            match result {
                Ok(resp) if retry => {
                    tracing::warn!(%service, %method, path = url.path(), attempt, status = resp.status().as_u16(), "retrying in {delay:?}");
                }
                Ok(resp) => {
                    tracing::debug!(
                        %service, %method, path = url.path(), status = resp.status().as_u16(),
                        took_ms = sent.elapsed().as_millis() as u64, "request"
                    );
                    return Ok(resp);
                }
                Err(err) if retry => {
                    tracing::warn!(%service, %method, path = url.path(), attempt, "{}, retrying in {delay:?}", crate::error::chain(&err));
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
                Err(source) if source.is_connect() => {
                    return Err(Error::Connect {
                        service,
                        url: strip_query(&url),
                        source: Arc::new(source),
                    })
                }
                Err(source) => {
                    return Err(Error::Transport {
                        service,
                        url: strip_query(&url),
                        source: Arc::new(source),
                    })
                }
            }
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    async fn read_body(
        &self,
        service: Service,
        url: &Url,
        resp: reqwest::Response,
    ) -> Result<Vec<u8>> {
        resp.bytes().await.map(|b| b.to_vec()).map_err(|source| {
            if source.is_timeout() {
                Error::Timeout {
                    service,
                    url: strip_query(url),
                    timeout: self.inner.options.request_timeout,
                }
            } else {
                Error::Transport {
                    service,
                    url: strip_query(url),
                    source: Arc::new(source),
                }
            }
        })
    }
}

/// `Retry-After` in seconds (the HTTP-date form is not used by OpenStack services), at most 30 s.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs.min(30)))
}

fn strip_query(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.to_string()
}

/// `base` + `path`, keeping the base's own path (`http://h/network` + `v2.0/ports`), and not
/// doubling a version that the catalog URL already carries (`http://h:9696/v2.0`).
pub(crate) fn join_url(base: &Url, path: &str) -> Url {
    let path = path.trim_start_matches('/');
    let mut base_path = base.path().trim_end_matches('/');
    if let Some((version, _)) = path.split_once('/') {
        if let Some(stripped) = base_path.strip_suffix(&format!("/{version}")) {
            base_path = stripped;
        }
    }
    let mut url = base.clone();
    url.set_path(&format!("{base_path}/{path}"));
    url.set_query(None);
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_joining_keeps_base_path_and_does_not_double_the_version() {
        let join = |base: &str, path: &str| join_url(&Url::parse(base).unwrap(), path).to_string();
        assert_eq!(
            join("http://h:9696", "v2.0/ports"),
            "http://h:9696/v2.0/ports"
        );
        assert_eq!(
            join("https://cloud/network/", "/v2.0/ports"),
            "https://cloud/network/v2.0/ports"
        );
        assert_eq!(
            join("http://h:9696/v2.0", "v2.0/ports"),
            "http://h:9696/v2.0/ports"
        );
        assert_eq!(
            join("http://h:9696/v2.0/", "v2.0/ports"),
            "http://h:9696/v2.0/ports"
        );
        assert_eq!(
            join("http://h:5000/v3", "auth/tokens"),
            "http://h:5000/v3/auth/tokens"
        );
    }

    #[test]
    fn retry_after_seconds_are_capped() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after", HeaderValue::from_static("3600"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(30)));
        h.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn action_requests_are_not_idempotent() {
        assert!(Request::new(Method::PUT, "v2.0/ports/x").idempotent);
        assert!(
            !Request::new(Method::PUT, "v2.0/trunks/x/add_subports")
                .not_idempotent()
                .idempotent
        );
        assert!(!Request::new(Method::POST, "v2.0/ports").idempotent);
    }
}
