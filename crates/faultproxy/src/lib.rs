//! A fault-injecting HTTP/1.1 reverse proxy, for tests only: it stands between kuryr and the
//! real Neutron (`[neutron] endpoint_override`) and, for the requests its rules match, makes
//! the faults the real service cannot be asked to make on cue:
//!
//! - [`Action::Status`]: answer an error status without forwarding (Neutron's 500s, 503s);
//! - [`Action::Lost`]: forward, let Neutron act, then close the connection without an answer;
//! - [`Action::Delay`]: forward after a delay (a slow or overloaded service);
//! - [`Action::Down`]: close the connection without forwarding (an outage).
//!
//! Everything else is forwarded as it is. Rules are changed while the proxy runs, in process
//! ([`FaultProxy::set_rules`]) or over HTTP (`PUT /_faultproxy/rules` with a JSON array of
//! rules, `GET /_faultproxy/stats`), which is how the soak script drives the binary.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderName, CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use url::Url;

/// Where the proxy's own control requests go (never forwarded).
pub const CONTROL_PREFIX: &str = "/_faultproxy/";

/// What a matching request gets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// An error answer with this status and a Neutron-style body; nothing is forwarded.
    Status { status: u16 },
    /// Forwarded and acted on; the answer never reaches the client.
    Lost,
    /// Forwarded after this many milliseconds.
    Delay { ms: u64 },
    /// The connection is closed at once; nothing is forwarded.
    Down,
}

impl Action {
    fn name(&self) -> String {
        match self {
            Action::Status { status } => format!("status {status}"),
            Action::Lost => "lost".into(),
            Action::Delay { .. } => "delay".into(),
            Action::Down => "down".into(),
        }
    }
}

/// Which requests get an action, and how often.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// The HTTP method (any when absent).
    #[serde(default)]
    pub method: Option<String>,
    /// A part of the path (`/ports`), or empty for every path.
    #[serde(default)]
    pub path: String,
    pub action: Action,
    /// The share of matching requests that get the action (1.0: all).
    #[serde(default = "always")]
    pub probability: f64,
    /// How many more times the rule may act (unlimited when absent).
    #[serde(default)]
    pub times: Option<u64>,
}

fn always() -> f64 {
    1.0
}

impl Rule {
    /// Every request whose method is `method` (any when empty) and whose path contains `path`.
    pub fn new(method: &str, path: &str, action: Action) -> Rule {
        Rule {
            method: (!method.is_empty()).then(|| method.to_ascii_uppercase()),
            path: path.to_owned(),
            action,
            probability: 1.0,
            times: None,
        }
    }

    /// Only this share of the matching requests.
    pub fn sometimes(mut self, probability: f64) -> Rule {
        self.probability = probability;
        self
    }

    /// Only the next `times` matching requests.
    pub fn times(mut self, times: u64) -> Rule {
        self.times = Some(times);
        self
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.method.as_deref().is_none_or(|m| m == method) && path.contains(&self.path)
    }
}

/// What the proxy did so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Requests received (control requests excepted).
    pub requests: u64,
    /// Requests sent on to the service.
    pub forwarded: u64,
    /// Faults made, by action (`status 500`, `lost`, `delay`, `down`).
    pub faults: BTreeMap<String, u64>,
}

impl Stats {
    /// Faults of every kind.
    pub fn total_faults(&self) -> u64 {
        self.faults.values().sum()
    }
}

struct State {
    upstream: Url,
    client: reqwest::Client,
    rules: Mutex<Vec<Rule>>,
    stats: Mutex<Stats>,
    /// xorshift64 state: the proxy needs only a fair coin, not a crate.
    random: Mutex<u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl State {
    fn roll(&self) -> f64 {
        let mut x = lock(&self.random);
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        (*x >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The action for this request, if a rule picks it (and uses up one of its times).
    fn pick(&self, method: &str, path: &str) -> Option<Action> {
        let mut rules = lock(&self.rules);
        for rule in rules.iter_mut() {
            if !rule.matches(method, path) || rule.times == Some(0) {
                continue;
            }
            if rule.probability < 1.0 && self.roll() >= rule.probability {
                continue;
            }
            if let Some(t) = rule.times.as_mut() {
                *t -= 1;
            }
            return Some(rule.action.clone());
        }
        None
    }

    fn count(&self, action: Option<&Action>, forwarded: bool) {
        let mut stats = lock(&self.stats);
        stats.requests += 1;
        if forwarded {
            stats.forwarded += 1;
        }
        if let Some(a) = action {
            *stats.faults.entry(a.name()).or_default() += 1;
        }
    }
}

/// A running proxy; it stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// A proxy for `upstream` on a free loopback port.
    ///
    /// # Errors
    /// The listening socket could not be made.
    pub async fn start(upstream: Url) -> std::io::Result<FaultProxy> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), upstream).await
    }

    /// A proxy for `upstream` listening on `listen`.
    ///
    /// # Errors
    /// The listening socket could not be made.
    pub async fn start_on(listen: SocketAddr, upstream: Url) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(std::io::Error::other)?;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9, |d| d.as_nanos() as u64)
            | 1;
        let state = Arc::new(State {
            upstream,
            client,
            rules: Mutex::new(Vec::new()),
            stats: Mutex::new(Stats::default()),
            random: Mutex::new(seed),
        });
        let task = tokio::spawn(accept_loop(listener, state.clone()));
        Ok(FaultProxy { addr, state, task })
    }

    /// The proxy's address, to put in `[neutron] endpoint_override`.
    pub fn url(&self) -> Url {
        let mut url = self.state.upstream.clone();
        let _ = url.set_ip_host(self.addr.ip());
        let _ = url.set_port(Some(self.addr.port()));
        let _ = url.set_scheme("http");
        url
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replace the rules (the first matching rule that fires acts).
    pub fn set_rules(&self, rules: Vec<Rule>) {
        *lock(&self.state.rules) = rules;
    }

    /// Forward everything from now on.
    pub fn clear(&self) {
        self.set_rules(Vec::new());
    }

    pub fn stats(&self) -> Stats {
        lock(&self.state.stats).clone()
    }

    /// Wait until the proxy stops (never, unless its task fails).
    pub async fn run(self) {
        let _ = (&mut { self }.task).await;
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            // Dropping the connection is how a lost answer or an outage is made.
            let hang_up = Arc::new(Notify::new());
            let service = {
                let hang_up = hang_up.clone();
                hyper::service::service_fn(move |req| handle(state.clone(), req, hang_up.clone()))
            };
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                () = hang_up.notified() => {}
            }
        });
    }
}

type Answer = Response<Full<Bytes>>;

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
    hang_up: Arc<Notify>,
) -> Result<Answer, Infallible> {
    let path = req.uri().path().to_owned();
    if let Some(control) = path.strip_prefix(CONTROL_PREFIX) {
        return Ok(control_request(&state, control, req).await);
    }
    let method = req.method().as_str().to_owned();
    let action = state.pick(&method, &path);
    match &action {
        Some(Action::Down) => {
            state.count(action.as_ref(), false);
            hang_up.notify_one();
            return Ok(std::future::pending().await);
        }
        Some(Action::Status { status }) => {
            state.count(action.as_ref(), false);
            return Ok(neutron_error(*status));
        }
        Some(Action::Delay { ms }) => tokio::time::sleep(Duration::from_millis(*ms)).await,
        Some(Action::Lost) | None => {}
    }
    let answer = forward(&state, req).await;
    state.count(action.as_ref(), true);
    if action == Some(Action::Lost) {
        hang_up.notify_one();
        return Ok(std::future::pending().await);
    }
    Ok(answer)
}

/// Hop-by-hop headers, and those the client or server library sets itself.
fn passes(name: &HeaderName) -> bool {
    ![HOST, CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING].contains(name)
}

async fn forward(state: &State, req: Request<Incoming>) -> Answer {
    let mut url = state.upstream.clone();
    url.set_path(req.uri().path());
    url.set_query(req.uri().query());
    let method = req.method().clone();
    let headers = req.headers().clone();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return plain(StatusCode::BAD_REQUEST, format!("reading the body: {e}")),
    };
    let mut out = state.client.request(method, url);
    for (name, value) in headers.iter().filter(|(n, _)| passes(n)) {
        out = out.header(name, value);
    }
    let resp = match out.body(body).send().await {
        Ok(r) => r,
        Err(e) => return plain(StatusCode::BAD_GATEWAY, format!("fault proxy: {e}")),
    };
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.unwrap_or_default();
    let mut answer = Response::new(Full::new(body));
    *answer.status_mut() = status;
    for (name, value) in headers.iter().filter(|(n, _)| passes(n)) {
        answer.headers_mut().append(name, value.clone());
    }
    answer
}

fn plain(status: StatusCode, text: String) -> Answer {
    let mut answer = Response::new(Full::new(Bytes::from(text)));
    *answer.status_mut() = status;
    answer
}

/// An error answer shaped like Neutron's.
fn neutron_error(status: u16) -> Answer {
    let body = serde_json::json!({
        "NeutronError": {
            "type": "InjectedFault",
            "message": format!("the fault proxy answered {status}"),
            "detail": ""
        }
    });
    let mut answer = Response::new(Full::new(Bytes::from(body.to_string())));
    *answer.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    answer.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    answer
}

async fn control_request(state: &State, what: &str, req: Request<Incoming>) -> Answer {
    let json = |value: serde_json::Value| {
        let mut a = Response::new(Full::new(Bytes::from(value.to_string())));
        a.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
        a
    };
    match (req.method().as_str(), what) {
        ("GET", "stats") => json(serde_json::to_value(lock(&state.stats).clone()).unwrap_or_default()),
        ("GET", "rules") => json(serde_json::to_value(lock(&state.rules).clone()).unwrap_or_default()),
        ("PUT", "rules") => {
            let body = match req.into_body().collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => return plain(StatusCode::BAD_REQUEST, format!("reading the body: {e}")),
            };
            match serde_json::from_slice::<Vec<Rule>>(&body) {
                Ok(rules) => {
                    *lock(&state.rules) = rules;
                    json(serde_json::json!({}))
                }
                Err(e) => plain(
                    StatusCode::BAD_REQUEST,
                    format!("the body is not a JSON array of rules: {e}"),
                ),
            }
        }
        _ => plain(
            StatusCode::NOT_FOUND,
            format!("unknown control request; use GET {CONTROL_PREFIX}stats, GET or PUT {CONTROL_PREFIX}rules"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_method_and_path_part() {
        let r = Rule::new("delete", "/ports/", Action::Lost);
        assert!(r.matches("DELETE", "/v2.0/ports/abc"));
        assert!(!r.matches("GET", "/v2.0/ports/abc"));
        assert!(!r.matches("DELETE", "/v2.0/networks/abc"));
        assert!(Rule::new("", "", Action::Down).matches("POST", "/anything"));
    }

    #[test]
    fn rules_read_from_json() {
        let rules: Vec<Rule> = serde_json::from_str(
            r#"[{"method":"POST","path":"/ports","action":{"kind":"status","status":500},"probability":0.2},
                {"action":{"kind":"down"},"times":3}]"#,
        )
        .unwrap();
        assert_eq!(rules[0].action, Action::Status { status: 500 });
        assert_eq!(rules[1].times, Some(3));
        assert_eq!(rules[1].probability, 1.0);
    }
}
