//! Transport failures: a Neutron that is not listening, one that never answers, a Keystone
//! that is down, and TLS verification (on by default) against a real TLS server.

// Tests fail by panicking, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{endpoint, env, http, password_auth};
use kuryr_openstack::auth::EndpointFilter;
use kuryr_openstack::neutron::{Filters, Neutron};
use kuryr_openstack::session::Request;
use kuryr_openstack::{AuthMethod, Error, HttpOptions, Service, Session, TlsOptions};
use reqwest::Method;
use url::Url;

/// A loopback port with nothing listening on it.
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn overridden(url: &str) -> EndpointFilter {
    let mut f = endpoint();
    f.endpoint_override = Some(Url::parse(url).unwrap());
    f
}

/// The real Keystone, and a "Neutron" on `port` of the loopback, with this request timeout
/// (and no retry after the first second, so that the timeout alone bounds a request).
fn neutron_at(port: u16, request_timeout: Duration) -> Neutron {
    let opts = HttpOptions {
        request_timeout,
        retry_timeout: Duration::from_secs(1),
        ..http()
    };
    let s = Session::new(
        AuthMethod::Keystone(password_auth(&env("OS_PASSWORD"))),
        opts,
    )
    .unwrap();
    Neutron::new(s, overridden(&format!("http://127.0.0.1:{port}")))
}

#[tokio::test]
async fn neutron_not_listening_is_a_typed_connection_error_within_the_timeout() {
    let port = closed_port();
    let n = neutron_at(port, Duration::from_secs(3));
    let started = Instant::now();
    let err = n.networks().list(&Filters::new()).await.unwrap_err();
    let took = started.elapsed();
    let Error::Connect { service, url, .. } = &err else {
        panic!("expected a connection error, got {err:?}")
    };
    assert_eq!(*service, Service::Neutron);
    assert!(url.contains(&port.to_string()));
    assert!(
        took < Duration::from_secs(3),
        "gave up after {took:?}, within the 3 s timeout"
    );
    assert!(err.is_retryable());
    assert!(err.hint().contains("running"));
}

#[tokio::test]
async fn neutron_that_never_answers_times_out_at_the_configured_timeout() {
    // Accepts connections (the kernel's backlog) but never reads or answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let n = neutron_at(port, Duration::from_secs(2));
    let started = Instant::now();
    let err = n.networks().list(&Filters::new()).await.unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(
            err,
            Error::Timeout {
                service: Service::Neutron,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(4),
        "timed out after {took:?}"
    );
    drop(listener);
}

/// Password auth against a Keystone on `port` of the loopback.
fn keystone_at(port: u16) -> kuryr_openstack::auth::KeystoneAuth {
    kuryr_openstack::auth::KeystoneAuth::new(
        &format!("http://127.0.0.1:{port}/v3"),
        kuryr_openstack::auth::Credentials::Password {
            user: common::user(),
            password: "x".to_string().into(),
        },
        common::project_scope(),
    )
    .unwrap()
}

#[tokio::test]
async fn keystone_down_names_keystone() {
    let port = closed_port();
    let auth = keystone_at(port);
    let mut opts = http();
    opts.retries = 1;
    let s = Session::new(AuthMethod::Keystone(auth), opts).unwrap();
    let err = s.token().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Connect {
                service: Service::Keystone,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("Keystone"), "{err}");
}

/// A real TLS server (Python's ssl module) with a certificate for 127.0.0.1 signed by a test
/// CA; with `require_client_cert`, it refuses clients without a certificate from that CA.
struct TlsServer {
    child: Child,
    port: u16,
    ca: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn openssl(args: &[&str], dir: &Path) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl is needed for the TLS tests (scripts/install-deps installs it)");
    assert!(status.success(), "openssl {args:?} failed");
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, in `dir`.
fn make_pki(dir: &Path) {
    let days = ["-days", "1"];
    openssl(
        &[
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=kuryr-test-ca",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ][..],
            &days,
        ]
        .concat(),
        dir,
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("client.ext"),
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    for who in ["server", "client"] {
        let key = format!("{who}.key");
        let csr = format!("{who}.csr");
        let pem = format!("{who}.pem");
        let ext = format!("{who}.ext");
        openssl(
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN={who}"),
                "-keyout",
                &key,
                "-out",
                &csr,
            ],
            dir,
        );
        openssl(
            &[
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-out",
                    &pem,
                    "-extfile",
                    &ext,
                ][..],
                &days,
            ]
            .concat(),
            dir,
        );
    }
}

// The child is reaped by `TlsServer`'s Drop, which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn tls_server(dir: &Path, require_client_cert: bool) -> TlsServer {
    make_pki(dir);
    let port = closed_port();
    let verify = if require_client_cert {
        format!(
            "ctx.verify_mode = ssl.CERT_REQUIRED; ctx.load_verify_locations('{}')",
            dir.join("ca.pem").display()
        )
    } else {
        String::new()
    };
    let script = format!(
        "import http.server, ssl\n\
         class H(http.server.BaseHTTPRequestHandler):\n\
         \x20   def do_GET(self):\n\
         \x20       body = b'{{\"ok\": true}}'\n\
         \x20       self.send_response(200); self.send_header('Content-Type', 'application/json')\n\
         \x20       self.send_header('Content-Length', str(len(body))); self.end_headers(); self.wfile.write(body)\n\
         \x20   def log_message(self, *a): pass\n\
         s = http.server.HTTPServer(('127.0.0.1', {port}), H)\n\
         ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain('{}', '{}')\n\
         {verify}\n\
         s.socket = ctx.wrap_socket(s.socket, server_side=True)\n\
         s.serve_forever()\n",
        dir.join("server.pem").display(),
        dir.join("server.key").display(),
    );
    let child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 is needed for the TLS tests");
    // Dropping the server kills and reaps the child, on every path.
    let server = TlsServer {
        child,
        port,
        ca: dir.join("ca.pem"),
        client_cert: dir.join("client.pem"),
        client_key: dir.join("client.key"),
    };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return server;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the test TLS server did not start");
}

async fn get_over_tls(server: &TlsServer, tls: TlsOptions) -> Result<(), Error> {
    let s = Session::new(
        AuthMethod::NoAuth {
            endpoint: Url::parse(&format!("https://127.0.0.1:{}", server.port)).unwrap(),
            project_id: None,
        },
        HttpOptions {
            tls,
            retries: 0,
            ..HttpOptions::default()
        },
    )?;
    s.send(
        Service::Neutron,
        &EndpointFilter::new("network"),
        Request::new(Method::GET, "v2.0/"),
    )
    .await
    .map(drop)
}

fn tmpdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kuryr-tls-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn tls_is_verified_by_default() {
    let dir = tmpdir("verify");
    let server = tls_server(&dir, false);

    let err = get_over_tls(&server, TlsOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Connect { .. }),
        "an unknown CA is refused: {err:?}"
    );

    let trusted = TlsOptions {
        ca_file: Some(server.ca.clone()),
        ..Default::default()
    };
    get_over_tls(&server, trusted)
        .await
        .expect("trusted with cafile");

    let insecure = TlsOptions {
        insecure: true,
        ..Default::default()
    };
    get_over_tls(&server, insecure)
        .await
        .expect("accepted with insecure");

    // A cafile that is not PEM is refused when the session is built, naming the option.
    let bogus = dir.join("bogus.pem");
    std::fs::write(&bogus, "not a certificate").unwrap();
    let err = get_over_tls(
        &server,
        TlsOptions {
            ca_file: Some(bogus),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Tls {
                option: "cafile",
                ..
            }
        ),
        "{err:?}"
    );
    drop(server);
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn client_certificates_are_presented() {
    let dir = tmpdir("mtls");
    let server = tls_server(&dir, true);
    let without = TlsOptions {
        ca_file: Some(server.ca.clone()),
        ..Default::default()
    };
    assert!(
        get_over_tls(&server, without).await.is_err(),
        "the server requires a client certificate"
    );
    let with = TlsOptions {
        ca_file: Some(server.ca.clone()),
        cert_file: Some(server.client_cert.clone()),
        key_file: Some(server.client_key.clone()),
        insecure: false,
    };
    get_over_tls(&server, with)
        .await
        .expect("accepted with certfile and keyfile");
    drop(server);
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn callers_waiting_on_a_down_keystone_share_one_failure() {
    let port = closed_port();
    let auth = keystone_at(port);
    let opts = HttpOptions {
        retries: 2,
        retry_delay: Duration::from_millis(300),
        ..http()
    };
    // One attempt takes about 0.3 + 0.6 s of backoff; 20 callers in turn would take ~18 s.
    let s = Session::new(AuthMethod::Keystone(auth), opts).unwrap();
    let started = Instant::now();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.token().await })
        })
        .collect();
    for t in tasks {
        let err = t.await.unwrap().unwrap_err();
        assert!(
            matches!(
                err,
                Error::Connect {
                    service: Service::Keystone,
                    ..
                }
            ),
            "{err:?}"
        );
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "20 waiting callers failed together in {took:?}"
    );
}
