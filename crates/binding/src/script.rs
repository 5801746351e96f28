//! Binding scripts: for a vif_type kuryr does not bind itself (midonet, iovisor, vrouter,
//! ...), upstream kuryr-lib runs the executable `<bindir>/<vif_type>`, and so does kuryr, with
//! the same arguments:
//!
//! ```text
//! <bindir>/<vif_type> bind   PORT_ID HOST_IFNAME ENDPOINT_ID MAC NETWORK_ID PROJECT_ID "VIF_DETAILS"
//! <bindir>/<vif_type> unbind PORT_ID HOST_IFNAME ENDPOINT_ID MAC "VIF_DETAILS" NETWORK_ID
//! ```
//!
//! (the argument orders differ; VIF_DETAILS is Python's `str()` of the dict). The script is
//! run directly, never through a shell, with a time limit; what it writes on stderr goes into
//! the error.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncReadExt;

use crate::pyrepr::python_str;
use crate::Error;

/// Upstream's `[DEFAULT] bindir`.
pub const DEFAULT_BINDIR: &str = "/usr/libexec/kuryr";

/// How long a script may run before it is killed.
pub const DEFAULT_SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

/// At most this much of a script's stderr goes into an error (its end, where the cause is).
const STDERR_KEPT: usize = 4096;

/// Longest vif_type accepted as a script name (Neutron's are all short).
const VIF_TYPE_MAX: usize = 64;

/// The arguments of a bind or unbind, as upstream passes them.
#[derive(Debug, Clone, Copy)]
pub struct ScriptArgs<'a> {
    pub port_id: &'a str,
    pub host_ifname: &'a str,
    pub endpoint_id: &'a str,
    /// The port's MAC as Neutron writes it (lowercase, colons).
    pub mac: &'a str,
    pub network_id: &'a str,
    pub project_id: &'a str,
    pub vif_details: &'a Value,
}

/// Where and how long scripts run.
#[derive(Debug, Clone)]
pub struct Scripts {
    pub bindir: PathBuf,
    pub timeout: Duration,
}

impl Default for Scripts {
    fn default() -> Self {
        Scripts {
            bindir: PathBuf::from(DEFAULT_BINDIR),
            timeout: DEFAULT_SCRIPT_TIMEOUT,
        }
    }
}

/// Refuses a vif_type that could name something outside the bindir, or an odd file: it comes
/// from Neutron, and becomes a path.
pub fn validate_vif_type(vif_type: &str) -> Result<(), Error> {
    let reason = if vif_type.is_empty() {
        Some("it is empty")
    } else if vif_type.len() > VIF_TYPE_MAX {
        Some("it is longer than 64 bytes")
    } else if vif_type.starts_with('.') {
        Some("it starts with `.`")
    } else if !vif_type
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        Some("only ASCII letters, digits, `_`, `-` and `.` may name a binding script")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidVifType {
            vif_type: vif_type.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

impl Scripts {
    /// Runs `<bindir>/<vif_type> bind ...`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidVifType`], [`Error::VifTypeNotSupported`] (no such executable),
    /// [`Error::ScriptFailed`] with its stderr, [`Error::ScriptTimeout`].
    pub async fn bind(&self, vif_type: &str, args: &ScriptArgs<'_>) -> Result<(), Error> {
        let details = python_str(args.vif_details);
        let argv = [
            "bind",
            args.port_id,
            args.host_ifname,
            args.endpoint_id,
            args.mac,
            args.network_id,
            args.project_id,
            &details,
        ];
        self.run(vif_type, "bind", args.port_id, &argv).await
    }

    /// Runs `<bindir>/<vif_type> unbind ...`.
    ///
    /// # Errors
    ///
    /// As [`Scripts::bind`].
    pub async fn unbind(&self, vif_type: &str, args: &ScriptArgs<'_>) -> Result<(), Error> {
        let details = python_str(args.vif_details);
        let argv = [
            "unbind",
            args.port_id,
            args.host_ifname,
            args.endpoint_id,
            args.mac,
            &details,
            args.network_id,
        ];
        self.run(vif_type, "unbind", args.port_id, &argv).await
    }

    /// The script of `vif_type`, checked to be an executable file.
    pub fn script(&self, vif_type: &str) -> Result<PathBuf, Error> {
        validate_vif_type(vif_type)?;
        let path = self.bindir.join(vif_type);
        if is_executable(&path) {
            Ok(path)
        } else {
            Err(Error::VifTypeNotSupported {
                vif_type: vif_type.to_owned(),
                path,
            })
        }
    }

    async fn run(
        &self,
        vif_type: &str,
        action: &'static str,
        port_id: &str,
        argv: &[&str],
    ) -> Result<(), Error> {
        let path = self.script(vif_type)?;
        let mut child = tokio::process::Command::new(&path)
            .args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // A script that outlives its timeout (or a dropped call) must not run on.
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| Error::ScriptSpawn {
                path: path.clone(),
                source,
            })?;
        let stderr = child.stderr.take();
        let run = async {
            // Read stderr while waiting, so a chatty script cannot block on a full pipe.
            let mut text = Vec::new();
            if let Some(mut stderr) = stderr {
                let _ = stderr.read_to_end(&mut text).await;
            }
            (child.wait().await, text)
        };
        let (status, stderr) = match tokio::time::timeout(self.timeout, run).await {
            Ok(done) => done,
            Err(_) => {
                return Err(Error::ScriptTimeout {
                    path,
                    action,
                    port_id: port_id.to_owned(),
                    timeout: self.timeout,
                })
            }
        };
        let status = status.map_err(|source| Error::ScriptSpawn {
            path: path.clone(),
            source,
        })?;
        if status.success() {
            tracing::info!(script = %path.display(), action, port_id, "binding script done");
            return Ok(());
        }
        Err(Error::ScriptFailed {
            path,
            action,
            port_id: port_id.to_owned(),
            status: describe_status(status),
            stderr: tail(&stderr),
        })
    }
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn describe_status(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => status.to_string(),
    }
}

/// The last [`STDERR_KEPT`] bytes of `stderr` as trimmed text.
fn tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim();
    if text.len() <= STDERR_KEPT {
        return text.to_owned();
    }
    let mut cut = text.len() - STDERR_KEPT;
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    format!("...{}", &text[cut..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vif_type_names() {
        for good in ["ovs", "midonet", "hw_veb", "vhostuser", "agilio-ovs", "a.b"] {
            assert!(validate_vif_type(good).is_ok(), "{good}");
        }
        let long = "x".repeat(65);
        for bad in [
            "", ".", "..", "../x", "a/b", "/bin/sh", ".hidden", "a b", "a\0", "é", &long,
        ] {
            let err = validate_vif_type(bad).err();
            assert!(matches!(err, Some(Error::InvalidVifType { .. })), "{bad:?}");
        }
    }

    #[test]
    fn stderr_tail_is_bounded() {
        assert_eq!(tail(b"  oops\n"), "oops");
        let long = "é".repeat(STDERR_KEPT);
        let kept = tail(long.as_bytes());
        assert!(kept.starts_with("...") && kept.len() <= STDERR_KEPT + 3);
    }
}
