//! Shared set-up of the plugin tests: the real local Neutron (from `scripts/stack env`), and
//! kuryr's plugin server started in-process on a private unix socket, spoken to with raw
//! HTTP/1.1 as Docker speaks to it.

#![allow(dead_code)]

pub mod flow;
pub mod guest;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kuryr_driver::{Driver, DriverConfig, PortMode};
use kuryr_openstack::auth::{
    Credentials, DomainRef, EndpointFilter, KeystoneAuth, NamedRef, Scope,
};
use kuryr_openstack::neutron::Neutron;
use kuryr_openstack::{AuthMethod, HttpOptions, Session};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// Poll `f` until it gives `Some`, or fail after `within` saying what was awaited.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = std::time::Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            started.elapsed() < within,
            "timed out after {within:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// An `OS_*` variable, or a failure that says how to get the stack.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: these tests need the local OpenStack. Run `scripts/test` \
             (which starts it), or `scripts/stack up && eval \"$(scripts/stack env)\"` first"
        )
    })
}

/// A Neutron client with kuryr's credentials, as the daemon has.
pub fn neutron() -> Neutron {
    neutron_with(HttpOptions::default(), None)
}

/// Neutron's API as the stack runs it (what a fault proxy forwards to).
pub fn neutron_url() -> url::Url {
    env("KURYR_STACK_NEUTRON_URL")
        .parse()
        .expect("KURYR_STACK_NEUTRON_URL is a URL")
}

/// A Neutron client with these HTTP settings, at `endpoint` instead of the catalog's.
pub fn neutron_with(http: HttpOptions, endpoint: Option<url::Url>) -> Neutron {
    let auth = KeystoneAuth::new(
        &env("OS_AUTH_URL"),
        Credentials::Password {
            user: NamedRef::Name {
                name: env("OS_USERNAME"),
                domain: DomainRef::Name(env("OS_USER_DOMAIN_NAME")),
            },
            password: env("OS_PASSWORD").into(),
        },
        Scope::Project(NamedRef::Name {
            name: env("OS_PROJECT_NAME"),
            domain: DomainRef::Name(env("OS_PROJECT_DOMAIN_NAME")),
        }),
    )
    .expect("valid auth settings");
    let session = Session::new(AuthMethod::Keystone(auth), http).expect("session");
    let mut filter = EndpointFilter::new("network");
    filter.region = std::env::var("OS_REGION_NAME").ok();
    filter.endpoint_override = endpoint;
    Neutron::new(session, filter)
}

/// The driver settings upstream's defaults give, for this host.
pub fn config() -> DriverConfig {
    DriverConfig {
        host_id: kuryr::driver::host_id().expect("hostname"),
        capability_scope: "local".into(),
        local_default_address_space: "no_address_space".into(),
        global_default_address_space: "no_address_space".into(),
        subnetpool_name_prefix: "kuryrPool".into(),
        default_subnetpool_v4: "kuryr".into(),
        default_subnetpool_v6: "kuryr6".into(),
        default_router: None,
        enable_dhcp: true,
        veth_dst_prefix: "eth".into(),
        process_external_connectivity: true,
        vif_plugging_is_fatal: false,
        vif_plugging_timeout: Duration::ZERO,
        bindir: "/usr/libexec/kuryr".into(),
        ovsdb_socket: kuryr::config::options::DEFAULT_OVSDB_SOCKET.into(),
        port_mode: PortMode::Veth,
        pool: None,
        teardown_dir: Some(std::env::temp_dir().join(format!(
            "kuryr-teardown-{}-{}",
            std::process::id(),
            next()
        ))),
        control_plane: kuryr_driver::control_plane::ControlPlane::new(
            kuryr_driver::control_plane::Source::Configured("kuryr-tests".into()),
        ),
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn next() -> u32 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// A fresh 64-hex Docker id (network or endpoint), unique to this run.
pub fn docker_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let seed = format!("{:08x}{:08x}{nanos:032x}", std::process::id(), next());
    let mut id: String = seed.chars().rev().collect();
    while id.len() < 64 {
        id.push_str(&format!("{:x}", id.len() * 7 + 3));
    }
    id.truncate(64);
    id
}

/// A name unique to this run.
pub fn unique(prefix: &str) -> String {
    format!("test-{prefix}-{}-{}", std::process::id(), next())
}

/// An IPv4 /24 and an IPv6 /64 no other test of this run uses; `n` is the test's own number.
pub fn cidrs(n: u8) -> (String, String) {
    let block = 150 + (std::process::id() % 50) as u8;
    (
        format!("10.{block}.{n}.0/24"),
        format!("fd00:{block:x}:{n:x}::/64"),
    )
}

/// kuryr's plugin server on a private socket.
pub struct Plugin {
    pub socket: PathBuf,
    pub driver: Arc<Driver>,
    server: tokio::task::JoinHandle<()>,
    teardowns: tokio::task::JoinHandle<()>,
}

impl Plugin {
    /// Start with upstream's default settings, once Neutron answered.
    pub async fn start() -> Plugin {
        Self::start_with(config()).await
    }

    pub async fn start_with(config: DriverConfig) -> Plugin {
        Self::start_on(neutron(), config, true).await
    }

    /// Start with any Neutron; `wait` for it to be usable first.
    pub async fn start_on(neutron: Neutron, config: DriverConfig, wait: bool) -> Plugin {
        let driver = Arc::new(Driver::new(neutron, config));
        if wait {
            tokio::time::timeout(Duration::from_secs(60), driver.wait_for_neutron())
                .await
                .expect("Neutron usable within 60 s: is the local stack up (scripts/stack up)?");
        } else {
            let d = driver.clone();
            tokio::spawn(async move { d.wait_for_neutron().await });
        }
        let teardowns = {
            let d = driver.clone();
            tokio::spawn(async move { d.finish_teardowns().await })
        };
        let socket =
            std::env::temp_dir().join(format!("kuryr-wire-{}-{}.sock", std::process::id(), next()));
        let listener = kuryr::server::listen::bind_unix(&socket)
            .await
            .expect("bind");
        let app = kuryr::server::router(driver.clone(), Default::default());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Plugin {
            socket,
            driver,
            server,
            teardowns,
        }
    }

    /// POST a JSON body; the status and the JSON answer.
    pub async fn call(&self, path: &str, body: Value) -> (u16, Value) {
        let bytes = if body.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(&body).unwrap()
        };
        self.call_raw(path, &bytes).await
    }

    /// POST a JSON body and require success.
    pub async fn ok(&self, path: &str, body: Value) -> Value {
        let (status, answer) = self.call(path, body.clone()).await;
        assert_eq!(status, 200, "{path} {body} answered {status}: {answer}");
        answer
    }

    /// POST raw bytes, as Docker's HTTP client does.
    pub async fn call_raw(&self, path: &str, body: &[u8]) -> (u16, Value) {
        call_socket(&self.socket, path, body).await
    }
}

/// POST raw bytes to a plugin socket, as Docker's HTTP client does; the status and the JSON
/// answer.
pub async fn call_socket(socket: &std::path::Path, path: &str, body: &[u8]) -> (u16, Value) {
    let stream = UnixStream::connect(socket).await.expect("connect");
    call_stream(stream, path, body).await
}

/// [`call_socket`] for a plugin listening on TCP (`kuryr serve --tcp`, `kuryr_uri`).
pub async fn call_tcp(address: std::net::SocketAddr, path: &str, body: &[u8]) -> (u16, Value) {
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .unwrap_or_else(|e| panic!("connect to the plugin at {address}: {e}"));
    call_stream(stream, path, body).await
}

/// [`call_tcp`] that says `None` instead of failing when nothing answers: for waiting
/// until a plugin behind a forwarded port listens.
pub async fn try_call_tcp(
    address: std::net::SocketAddr,
    path: &str,
    body: &[u8],
) -> Option<(u16, Value)> {
    let stream = tokio::net::TcpStream::connect(address).await.ok()?;
    let text = exchange(stream, path, body).await.ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let value = serde_json::from_str(text.split("\r\n\r\n").nth(1)?).ok()?;
    Some((status, value))
}

async fn call_stream<S>(stream: S, path: &str, body: &[u8]) -> (u16, Value)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let text = exchange(stream, path, body)
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let status: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text}"));
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    let value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("{path}: the answer is not JSON ({e}): {body}"));
    (status, value)
}

/// POST `body` to `path` as Docker's HTTP client does, over one connection; the raw answer.
async fn exchange<S>(mut stream: S, path: &str, body: &[u8]) -> std::io::Result<String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: plugin\r\nAccept: application/vnd.docker.plugins.v1.2+json\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    // The server may answer (and close) before reading all of an oversized body.
    let _ = stream.write_all(body).await;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    Ok(String::from_utf8_lossy(&raw).into_owned())
}

impl Drop for Plugin {
    fn drop(&mut self) {
        self.server.abort();
        self.teardowns.abort();
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// The `Err` text of an error answer.
pub fn err_text(answer: &Value) -> &str {
    answer["Err"]
        .as_str()
        .unwrap_or_else(|| panic!("no Err in {answer}"))
}
