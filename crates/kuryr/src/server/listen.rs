//! Where the plugin listens: the unix socket Docker discovers under /run/docker/plugins,
//! and optionally the TCP address of `kuryr_uri`, with TLS when `enable_ssl`.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// Socket mode: root and the socket's group may call the plugin, nobody else.
pub const SOCKET_MODE: u32 = 0o660;

/// Bind the unix socket. A leftover socket file whose server is gone is replaced; a socket
/// another live process serves is an error (two daemons must not fight over one name).
pub async fn bind_unix(path: &Path) -> io::Result<UnixListener> {
    bind_unix_mode(path, SOCKET_MODE).await
}

/// [`bind_unix`], then the socket given `group` (`[DEFAULT] socket_group`: a group name from
/// /etc/group or a numeric gid), so that the members of that group may call the plugin.
/// Without a group the socket keeps the daemon's own group.
pub async fn bind_unix_group(path: &Path, group: Option<&str>) -> io::Result<UnixListener> {
    // Resolved before binding: a group that does not exist leaves no socket behind.
    let gid = match group {
        Some(group) => {
            let groups = std::fs::read_to_string(GROUP_FILE).unwrap_or_default();
            Some(group_id(group, &groups)?)
        }
        None => None,
    };
    let listener = bind_unix(path).await?;
    if let Some(gid) = gid {
        if let Err(e) = std::os::unix::fs::chown(path, None, Some(gid)) {
            let _ = std::fs::remove_file(path);
            // A group the daemon is not in takes CAP_CHOWN, which a unit may have left out.
            let doing = if e.kind() == io::ErrorKind::PermissionDenied {
                format!(
                    "giving [DEFAULT] socket_group (gid {gid}) takes CAP_CHOWN or membership \
                     of that group; could not give it to"
                )
            } else {
                format!("giving [DEFAULT] socket_group (gid {gid}) to")
            };
            return Err(with_path(e, &doing, path));
        }
    }
    Ok(listener)
}

/// Where group names are looked up (no NSS: a group only a directory service knows is given
/// by its number).
const GROUP_FILE: &str = "/etc/group";

/// The gid of `group`, a number or a name in `groups` (the text of /etc/group).
fn group_id(group: &str, groups: &str) -> io::Result<u32> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    groups
        .lines()
        .find_map(|line| {
            // name:password:gid:members
            let mut fields = line.split(':');
            if fields.next()? != group {
                return None;
            }
            fields.nth(1)?.trim().parse().ok()
        })
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "[DEFAULT] socket_group = {group}: no such group in {GROUP_FILE}; give an \
                     existing group's name or a numeric gid, or leave it empty for the \
                     daemon's own group"
                ),
            )
        })
}

/// [`bind_unix`] with another file mode.
pub async fn bind_unix_mode(path: &Path, mode: u32) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| with_path(e, "creating", dir))?;
    }
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "{} is served by another process (another kuryr?); stop it or pass \
                     another --socket",
                    path.display()
                ),
            ));
        }
        std::fs::remove_file(path).map_err(|e| with_path(e, "removing the stale socket", path))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| with_path(e, "binding", path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| with_path(e, "setting the mode of", path))?;
    Ok(listener)
}

/// The TCP address of `kuryr_uri` (`http://127.0.0.1:23750`).
pub fn tcp_address(kuryr_uri: &str) -> Result<String, String> {
    let url = url::Url::parse(kuryr_uri)
        .map_err(|e| format!("[DEFAULT] kuryr_uri = {kuryr_uri} is not a URL: {e}"))?;
    let host = url
        .host_str()
        .ok_or_else(|| format!("[DEFAULT] kuryr_uri = {kuryr_uri} has no host"))?;
    let port = url.port_or_known_default().unwrap_or(23750);
    // An IPv6 host keeps its brackets, as a socket address needs them.
    Ok(format!("{host}:{port}"))
}

/// TLS for the TCP listener, from `ssl_cert_file` and `ssl_key_file`.
pub fn tls_acceptor(cert_file: &Path, key_file: &Path) -> Result<TlsAcceptor, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| format!("[DEFAULT] ssl_cert_file = {}: {e}", cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "[DEFAULT] ssl_cert_file = {} holds no PEM certificate",
            cert_file.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| format!("[DEFAULT] ssl_key_file = {}: {e}", key_file.display()))?;
    let config = ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS setup: {e}"))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| {
        format!("[DEFAULT] ssl_cert_file / ssl_key_file do not make a usable pair: {e}")
    })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A TCP listener that completes the TLS handshake before handing a connection on;
/// failed handshakes are logged and skipped.
pub struct TlsListener {
    pub tcp: TcpListener,
    pub acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, addr) = match self.tcp.accept().await {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!("accepting a TCP connection: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            match self.acceptor.accept(stream).await {
                Ok(tls) => return (tls, addr),
                Err(e) => tracing::warn!(%addr, "TLS handshake failed: {e}"),
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// Remove the socket file when the daemon stops, so Docker does not find a dead plugin.
pub struct SocketGuard(pub PathBuf);

impl Drop for SocketGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn with_path(e: io::Error, doing: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{doing} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_group_by_name_or_number() {
        let groups = "root:x:0:\ndaemon:x:1:\n# not a group\ndocker:x:998:alice,bob\n";
        assert_eq!(group_id("docker", groups).unwrap(), 998);
        assert_eq!(group_id("daemon", groups).unwrap(), 1);
        assert_eq!(group_id("4242", groups).unwrap(), 4242);
        let err = group_id("dockre", groups).unwrap_err().to_string();
        assert!(err.contains("[DEFAULT] socket_group = dockre"), "{err}");
        assert!(group_id("docker", "").is_err());
    }

    #[test]
    fn tcp_address_of_kuryr_uri() {
        assert_eq!(
            tcp_address("http://127.0.0.1:23750").unwrap(),
            "127.0.0.1:23750"
        );
        assert_eq!(tcp_address("https://[::1]:9000").unwrap(), "[::1]:9000");
        assert!(tcp_address("not a url").is_err());
    }
}
