//! `kuryr serve` as Docker meets it: the unix socket (mode 0660, one daemon per socket,
//! removed on exit) and the optional `kuryr_uri` listener, plain and TLS.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: these tests need the local OpenStack. Run `scripts/test` \
             (which starts it), or `scripts/stack up && eval \"$(scripts/stack env)\"` first"
        )
    })
}

fn tmpdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kuryr-serve-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A running `kuryr serve`, stopped (SIGTERM) when dropped.
struct Daemon {
    child: Child,
    socket: PathBuf,
}

impl Daemon {
    fn start(socket: &Path, extra: &[&str], conf: Option<&Path>) -> Daemon {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kuryr"));
        if let Some(conf) = conf {
            cmd.arg("--config-file").arg(conf);
        }
        let child = cmd
            .arg("serve")
            .arg("--socket")
            .arg(socket)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start kuryr serve");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(socket).is_err() {
            assert!(
                Instant::now() < deadline,
                "kuryr serve did not listen on {socket:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Daemon {
            child,
            socket: socket.to_owned(),
        }
    }

    fn stop(mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}

fn unix_call(socket: &Path, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: plugin\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (
        status,
        raw.split("\r\n\r\n").nth(1).unwrap_or("").to_owned(),
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn socket_is_0660_exclusive_and_removed_on_exit() {
    env("OS_AUTH_URL");
    let dir = tmpdir("socket");
    let socket = dir.join("kuryr.sock");
    let daemon = Daemon::start(&socket, &[], None);
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660, "not world-writable");
    let (status, body) = unix_call(&socket, "/Plugin.Activate");
    assert_eq!(status, 200);
    assert_eq!(body, r#"{"Implements":["NetworkDriver","IpamDriver"]}"#);
    let (status, body) = unix_call(&socket, "/NetworkDriver.GetCapabilities");
    assert_eq!(status, 200);
    assert!(body.contains(r#""Scope":"local""#), "{body}");

    // A second daemon on the same socket refuses to start, and leaves the first alone.
    let second = Command::new(env!("CARGO_BIN_EXE_kuryr"))
        .arg("serve")
        .arg("--socket")
        .arg(&socket)
        .output()
        .unwrap();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("served by another process"), "{stderr}");
    assert_eq!(unix_call(&socket, "/Plugin.Activate").0, 200);

    let exit = daemon.stop();
    assert!(exit.success(), "{exit:?}");
    assert!(!socket.exists(), "socket removed on exit");
}

#[test]
fn stale_socket_file_is_replaced() {
    env("OS_AUTH_URL");
    let dir = tmpdir("stale");
    let socket = dir.join("kuryr.sock");
    // A socket file nobody serves, as a crashed daemon leaves it.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    let daemon = Daemon::start(&socket, &[], None);
    assert_eq!(unix_call(&socket, "/Plugin.Activate").0, 200);
    assert!(daemon.stop().success());
}

fn conf_with(dir: &Path, default_section: &str) -> PathBuf {
    let path = dir.join("kuryr.conf");
    std::fs::write(&path, format!("[DEFAULT]\n{default_section}\n")).unwrap();
    path
}

#[tokio::test]
async fn kuryr_uri_serves_plain_http() {
    env("OS_AUTH_URL");
    let dir = tmpdir("tcp");
    let port = free_port();
    let conf = conf_with(&dir, &format!("kuryr_uri = http://127.0.0.1:{port}"));
    let _daemon = Daemon::start(&dir.join("k.sock"), &["--tcp"], Some(&conf));
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/Plugin.Activate");
    let mut answer = None;
    for _ in 0..50 {
        if let Ok(r) = client.post(&url).send().await {
            answer = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let answer = answer.expect("kuryr_uri answers");
    assert_eq!(answer.status(), 200);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["Implements"][1], "IpamDriver");
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

#[tokio::test]
async fn kuryr_uri_serves_tls_when_enable_ssl() {
    env("OS_AUTH_URL");
    let dir = tmpdir("tls");
    openssl(
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
            "-days",
            "1",
        ],
        &dir,
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "key.pem",
            "-out",
            "server.csr",
        ],
        &dir,
    );
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "cert.pem",
            "-days",
            "1",
            "-extfile",
            "server.ext",
        ],
        &dir,
    );
    let port = free_port();
    let conf = conf_with(
        &dir,
        &format!(
            "kuryr_uri = https://127.0.0.1:{port}\nenable_ssl = true\nssl_cert_file = {}\nssl_key_file = {}",
            dir.join("cert.pem").display(),
            dir.join("key.pem").display()
        ),
    );
    let _daemon = Daemon::start(&dir.join("k.sock"), &["--tcp"], Some(&conf));
    let ca = reqwest::Certificate::from_pem(&std::fs::read(dir.join("ca.pem")).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .unwrap();
    let url = format!("https://127.0.0.1:{port}/IpamDriver.GetCapabilities");
    let mut answer = None;
    for _ in 0..50 {
        match client.post(&url).send().await {
            Ok(r) => {
                answer = Some(r);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let answer = answer.expect("kuryr_uri answers over TLS");
    assert_eq!(answer.status(), 200);
    // Port pools are on by default: the port's MAC comes from the pool, not from Docker.
    assert_eq!(
        answer.text().await.unwrap(),
        r#"{"RequiresMACAddress":false}"#
    );
    // Plain HTTP on the TLS port gets nothing useful.
    let plain = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/Plugin.Activate"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.map(|r| r.status() != 200).unwrap_or(true));
}
