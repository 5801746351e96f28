//! Teardowns that finish: a DeleteEndpoint, ReleaseAddress, RevokeExternalConnectivity or
//! DeleteNetwork is written to a file on the host before it changes anything, and the file
//! goes once the teardown is done. Docker sends each of these calls once and ignores their
//! errors, so a teardown that fails (Neutron down, a 500) or that a crash interrupts would
//! otherwise leave its ports, interfaces and networks forever. What is left in the folder is
//! sent again in the background, with backoff, until it succeeds, also by the next daemon
//! after a restart.
//!
//! A record holds only what identifies the work without ambiguity even much later: Docker's
//! endpoint and network ids are never reused, and ReleaseAddress records the Neutron port
//! ids it found (an address may be handed out again, a port id never) or, when Neutron could
//! not be asked which ports those are, the pool, the address and the time: only ports made
//! before then are released when it is sent again.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// One unfinished teardown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "call")]
pub enum Teardown {
    DeleteEndpoint {
        network_id: String,
        endpoint_id: String,
    },
    RevokeExternalConnectivity {
        network_id: String,
        endpoint_id: String,
    },
    /// The ports that held a released address.
    ReleaseAddress {
        address: String,
        ports: Vec<String>,
    },
    /// A released address whose ports are not known yet; ports made after `recorded_at`
    /// (RFC 3339) hold it again for someone else and are left alone.
    ReleaseAddressIn {
        pool_id: String,
        address: String,
        recorded_at: String,
    },
    DeleteNetwork {
        network_id: String,
    },
    /// A swarm manager's FreeNetwork.
    FreeNetwork {
        network_id: String,
    },
}

impl Teardown {
    /// The record's file name: the same work always has the same name, so a repeated call
    /// overwrites its record instead of adding a second one.
    fn file_name(&self) -> String {
        match self {
            Teardown::DeleteEndpoint { endpoint_id, .. } => {
                format!("delete-endpoint-{endpoint_id}.json")
            }
            Teardown::RevokeExternalConnectivity { endpoint_id, .. } => {
                format!("revoke-external-{endpoint_id}.json")
            }
            Teardown::ReleaseAddress { ports, .. } => {
                let mut ports = ports.clone();
                ports.sort();
                format!("release-address-{}.json", ports.join("_"))
            }
            Teardown::ReleaseAddressIn {
                pool_id, address, ..
            } => format!(
                "release-address-in-{pool_id}-{}.json",
                address.replace(':', "-")
            ),
            Teardown::DeleteNetwork { network_id } => format!("delete-network-{network_id}.json"),
            Teardown::FreeNetwork { network_id } => format!("free-network-{network_id}.json"),
        }
    }

    /// The Docker network it belongs to, when it names one.
    pub fn docker_network(&self) -> Option<&str> {
        match self {
            Teardown::DeleteEndpoint { network_id, .. }
            | Teardown::RevokeExternalConnectivity { network_id, .. }
            | Teardown::DeleteNetwork { network_id }
            | Teardown::FreeNetwork { network_id } => Some(network_id),
            Teardown::ReleaseAddress { .. } | Teardown::ReleaseAddressIn { .. } => None,
        }
    }

    /// Whether the Docker ids it names are ids (records are read back from disk, and one
    /// that names none could never succeed).
    fn names_valid_ids(&self) -> bool {
        use kuryr_libnetwork::DockerId;
        let valid = |s: &str| s.parse::<DockerId>().is_ok();
        match self {
            Teardown::DeleteEndpoint {
                network_id,
                endpoint_id,
            }
            | Teardown::RevokeExternalConnectivity {
                network_id,
                endpoint_id,
            } => valid(network_id) && valid(endpoint_id),
            Teardown::DeleteNetwork { network_id } | Teardown::FreeNetwork { network_id } => {
                valid(network_id)
            }
            Teardown::ReleaseAddress { ports, .. } => !ports.is_empty(),
            Teardown::ReleaseAddressIn {
                pool_id,
                address,
                recorded_at,
            } => {
                crate::mapping::is_uuid(pool_id)
                    && address.parse::<std::net::IpAddr>().is_ok()
                    && chrono::DateTime::parse_from_rfc3339(recorded_at).is_ok()
            }
        }
    }

    /// Whether the name only holds characters of ids (records are read back from disk).
    fn is_safe_name(name: &str) -> bool {
        name.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    }
}

impl std::fmt::Display for Teardown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Teardown::DeleteEndpoint { endpoint_id, .. } => {
                write!(f, "DeleteEndpoint of endpoint {endpoint_id}")
            }
            Teardown::RevokeExternalConnectivity { endpoint_id, .. } => {
                write!(f, "RevokeExternalConnectivity of endpoint {endpoint_id}")
            }
            Teardown::ReleaseAddress { address, ports } => {
                write!(
                    f,
                    "ReleaseAddress of {address} (ports {})",
                    ports.join(", ")
                )
            }
            Teardown::ReleaseAddressIn {
                pool_id, address, ..
            } => write!(f, "ReleaseAddress of {address} (pool {pool_id})"),
            Teardown::DeleteNetwork { network_id } => {
                write!(f, "DeleteNetwork of network {network_id}")
            }
            Teardown::FreeNetwork { network_id } => {
                write!(f, "FreeNetwork of swarm network {network_id}")
            }
        }
    }
}

/// Backoff of a teardown that failed: 1 s doubling to 60 s.
fn retry_delay(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.min(6)).min(Duration::from_secs(60))
}

#[derive(Debug, Default)]
struct Pending {
    /// Records a call is working on right now: the background does not send them too.
    running: HashSet<String>,
    /// When each failed record may be tried again, and how often it failed.
    next_try: HashMap<String, (Instant, u32)>,
}

/// The folder of unfinished teardowns.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    pending: Mutex<Pending>,
}

/// A record being worked on; [`Journal::done`] or [`Journal::failed`] ends it.
#[derive(Debug)]
pub struct Entry {
    name: String,
    pub teardown: Teardown,
}

impl Journal {
    /// The journal in `dir`, made (mode 0700: records name the host's ports) if missing.
    ///
    /// # Errors
    /// The folder cannot be made or read.
    pub fn open(dir: &Path) -> std::io::Result<Journal> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        for file in std::fs::read_dir(dir)?.flatten() {
            let name = file.file_name();
            let name = name.to_string_lossy();
            // Half written when a daemon was killed: the rename never happened, so the
            // record it replaced (if any) is still there.
            if name.starts_with('.') && name.ends_with(".tmp") {
                let _ = std::fs::remove_file(file.path());
            }
        }
        Ok(Journal {
            dir: dir.to_owned(),
            pending: Mutex::new(Pending::default()),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Write the record before the teardown starts.
    ///
    /// # Errors
    /// The record cannot be written (a full or read-only disk): the caller goes on without
    /// it, and says so.
    pub fn begin(&self, teardown: Teardown) -> std::io::Result<Entry> {
        let name = teardown.file_name();
        let body = serde_json::to_vec(&teardown).map_err(std::io::Error::other)?;
        let tmp = self.dir.join(format!(".{name}.tmp"));
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&body)?;
        }
        // A rename is atomic: a crash leaves the old record or the new one, never half.
        std::fs::rename(&tmp, self.dir.join(&name))?;
        self.lock().running.insert(name.clone());
        Ok(Entry { name, teardown })
    }

    /// The teardown is complete: its record goes.
    pub fn done(&self, entry: Entry) {
        let mut pending = self.lock();
        pending.running.remove(&entry.name);
        pending.next_try.remove(&entry.name);
        drop(pending);
        if let Err(e) = std::fs::remove_file(self.dir.join(&entry.name)) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(record = %entry.name, "removing a finished teardown's record: {e}");
            }
        }
    }

    /// The teardown failed: its record stays for the background to send again.
    pub fn failed(&self, entry: Entry) {
        let mut pending = self.lock();
        pending.running.remove(&entry.name);
        let failures = pending.next_try.get(&entry.name).map_or(0, |(_, n)| n + 1);
        pending.next_try.insert(
            entry.name,
            (Instant::now() + retry_delay(failures), failures),
        );
    }

    /// The records due now that no call is working on, taken for a new attempt (end each
    /// with `done` or `failed`). A record that cannot be read is moved aside, named, so
    /// that it is not read again.
    pub fn take_due(&self) -> Vec<Entry> {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let now = Instant::now();
        let mut due = Vec::new();
        for file in dir.flatten() {
            let name = file.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !name.ends_with(".json") || !Teardown::is_safe_name(&name) {
                continue;
            }
            {
                let pending = self.lock();
                if pending.running.contains(&name)
                    || pending.next_try.get(&name).is_some_and(|(at, _)| *at > now)
                {
                    continue;
                }
            }
            let path = file.path();
            let teardown = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Teardown>(&b).map_err(|e| e.to_string()));
            match teardown {
                Ok(t) if t.file_name() == name && t.names_valid_ids() => {
                    let mut pending = self.lock();
                    // A call may have started the same work meanwhile.
                    if pending.running.insert(name.clone()) {
                        due.push(Entry { name, teardown: t });
                    }
                }
                Ok(_) | Err(_) => {
                    let aside = self.dir.join(format!(".{name}.unreadable"));
                    tracing::warn!(record = %path.display(), "a teardown record that cannot be read; moved to {}", aside.display());
                    let _ = std::fs::rename(&path, aside);
                }
            }
        }
        due
    }

    /// Every unfinished teardown, due or not (for `kuryr stats` and the tests).
    pub fn unfinished(&self) -> Vec<Teardown> {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        dir.flatten()
            .filter(|f| {
                let n = f.file_name();
                let n = n.to_string_lossy();
                !n.starts_with('.') && n.ends_with(".json")
            })
            .filter_map(|f| serde_json::from_slice(&std::fs::read(f.path()).ok()?).ok())
            .collect()
    }
}

impl crate::Driver {
    /// Run a teardown with its record: written before, removed once done, kept (for
    /// [`crate::Driver::finish_teardowns`]) when it fails.
    pub(crate) async fn finishing<T>(
        &self,
        teardown: Teardown,
        work: impl std::future::Future<Output = crate::Result<T>>,
    ) -> crate::Result<T> {
        let Some(journal) = &self.journal else {
            return work.await;
        };
        let entry = match journal.begin(teardown) {
            Ok(entry) => entry,
            Err(e) => {
                tracing::error!(dir = %journal.dir().display(), "cannot record a teardown, so it is not tried again if it fails: {e}");
                return work.await;
            }
        };
        match work.await {
            Ok(value) => {
                journal.done(entry);
                Ok(value)
            }
            Err(e) => {
                let e = e.context(format!(
                    "{} did not finish; kuryr tries it again in the background until it succeeds",
                    entry.teardown
                ));
                tracing::warn!("{}", e.report());
                journal.failed(entry);
                Err(e)
            }
        }
    }

    /// Send the recorded teardowns again until each succeeds: those that failed (after their
    /// backoff) and those a previous daemon left. Runs for the daemon's life.
    pub async fn finish_teardowns(&self) {
        let Some(journal) = &self.journal else {
            return;
        };
        loop {
            if self.readiness.ready().await.is_ok() {
                for entry in journal.take_due() {
                    match self.run_teardown(&entry.teardown).await {
                        Ok(()) => {
                            tracing::info!("finished {}", entry.teardown);
                            journal.done(entry);
                        }
                        Err(e) => {
                            tracing::warn!("{} failed again: {}", entry.teardown, e.report());
                            journal.failed(entry);
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// The teardowns not finished yet.
    pub fn unfinished_teardowns(&self) -> Vec<Teardown> {
        self.journal
            .as_ref()
            .map(Journal::unfinished)
            .unwrap_or_default()
    }

    async fn run_teardown(&self, teardown: &Teardown) -> crate::Result<()> {
        use kuryr_libnetwork::network::{EndpointRequest, NetworkRequest};
        use kuryr_libnetwork::DockerId;
        let id = |s: &str| -> crate::Result<DockerId> {
            s.parse().map_err(|e: String| {
                crate::DriverError::invalid(format!(
                    "a teardown record names {e}; remove the record"
                ))
            })
        };
        let endpoint = |network_id: &str, endpoint_id: &str| -> crate::Result<EndpointRequest> {
            Ok(EndpointRequest {
                network_id: id(network_id)?,
                endpoint_id: id(endpoint_id)?,
            })
        };
        match teardown {
            Teardown::DeleteEndpoint {
                network_id,
                endpoint_id,
            } => self
                .delete_endpoint(&endpoint(network_id, endpoint_id)?)
                .await
                .map(drop),
            Teardown::RevokeExternalConnectivity {
                network_id,
                endpoint_id,
            } => self
                .revoke_external(&endpoint(network_id, endpoint_id)?)
                .await
                .map(drop),
            Teardown::DeleteNetwork { network_id } => {
                let req = NetworkRequest {
                    network_id: id(network_id)?,
                };
                self.delete_network(&req).await.map(drop)
            }
            Teardown::FreeNetwork { network_id } => {
                let req = NetworkRequest {
                    network_id: id(network_id)?,
                };
                self.free_network(&req).await.map(drop)
            }
            Teardown::ReleaseAddress { ports, .. } => {
                for port_id in ports {
                    let port = self.neutron.ports().get_opt(port_id).await.map_err(
                        crate::error::neutron_err(format_args!("reading port {port_id}")),
                    )?;
                    if let Some(port) = port {
                        self.release_port(&port).await?;
                    }
                }
                Ok(())
            }
            Teardown::ReleaseAddressIn {
                pool_id,
                address,
                recorded_at,
            } => {
                let invalid = || {
                    crate::DriverError::invalid(format!(
                        "a teardown record names pool {pool_id}, address {address} at \
                         {recorded_at}; remove the record"
                    ))
                };
                let pool = pool_id.parse().map_err(|_| invalid())?;
                let ip = address.parse().map_err(|_| invalid())?;
                let before = chrono::DateTime::parse_from_rfc3339(recorded_at)
                    .map_err(|_| invalid())?
                    .with_timezone(&chrono::Utc);
                self.release_address_in(&pool, ip, Some(before)).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("kuryr-journal-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn endpoint(id: char) -> Teardown {
        Teardown::DeleteEndpoint {
            network_id: "f".repeat(64),
            endpoint_id: id.to_string().repeat(64),
        }
    }

    #[test]
    fn a_record_lives_from_begin_to_done() {
        let j = Journal::open(&dir("done")).unwrap();
        let e = j.begin(endpoint('a')).unwrap();
        assert_eq!(j.unfinished(), vec![endpoint('a')]);
        // Being worked on: not handed to the background.
        assert!(j.take_due().is_empty());
        j.done(e);
        assert!(j.unfinished().is_empty());
    }

    #[test]
    fn a_failed_record_comes_back_after_its_backoff() {
        let j = Journal::open(&dir("failed")).unwrap();
        let e = j.begin(endpoint('b')).unwrap();
        j.failed(e);
        assert!(j.take_due().is_empty(), "due only after a second");
        j.lock().next_try.clear();
        let due = j.take_due();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].teardown, endpoint('b'));
        // Taken: not handed out twice.
        assert!(j.take_due().is_empty());
    }

    #[test]
    fn records_survive_a_restart() {
        let d = dir("restart");
        let j = Journal::open(&d).unwrap();
        let _ = j.begin(endpoint('c')).unwrap();
        // A new daemon: nothing runs, so the record is due at once.
        let again = Journal::open(&d).unwrap();
        let due = again.take_due();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].teardown, endpoint('c'));
    }

    #[test]
    fn the_same_work_has_one_record() {
        let j = Journal::open(&dir("same")).unwrap();
        let a = Teardown::ReleaseAddress {
            address: "10.0.0.5".into(),
            ports: vec!["p2".into(), "p1".into()],
        };
        let b = Teardown::ReleaseAddress {
            address: "10.0.0.5".into(),
            ports: vec!["p1".into(), "p2".into()],
        };
        let _ = j.begin(a).unwrap();
        let _ = j.begin(b).unwrap();
        assert_eq!(j.unfinished().len(), 1);
    }

    #[test]
    fn an_unreadable_record_is_moved_aside() {
        let d = dir("unreadable");
        let j = Journal::open(&d).unwrap();
        std::fs::write(d.join("delete-network-x.json"), b"{not json").unwrap();
        assert!(j.take_due().is_empty());
        assert!(d.join(".delete-network-x.json.unreadable").exists());
    }

    #[test]
    fn a_record_naming_no_docker_id_is_moved_aside() {
        let d = dir("invalid");
        let j = Journal::open(&d).unwrap();
        let bad = Teardown::DeleteNetwork {
            network_id: "not-an-id".into(),
        };
        std::fs::write(d.join(bad.file_name()), serde_json::to_vec(&bad).unwrap()).unwrap();
        assert!(j.take_due().is_empty());
        assert!(j.unfinished().is_empty());
    }

    #[test]
    fn a_release_by_address_names_a_safe_file_and_is_checked() {
        let ok = Teardown::ReleaseAddressIn {
            pool_id: "9a7c1f0e-3b2d-4c5e-8f6a-1b2c3d4e5f60".into(),
            address: "fd00::5".into(),
            recorded_at: "2026-12-03T12:00:00.5+00:00".into(),
        };
        assert!(ok.names_valid_ids());
        assert!(
            Teardown::is_safe_name(&ok.file_name()),
            "{}",
            ok.file_name()
        );
        let bad = Teardown::ReleaseAddressIn {
            pool_id: "../x".into(),
            address: "10.0.0.5".into(),
            recorded_at: "now".into(),
        };
        assert!(!bad.names_valid_ids());
    }

    #[test]
    fn a_half_written_record_goes_at_open() {
        let d = dir("half");
        let _ = Journal::open(&d).unwrap();
        std::fs::write(d.join(".delete-network-x.json.tmp"), b"{\"ca").unwrap();
        let _ = Journal::open(&d).unwrap();
        assert!(!d.join(".delete-network-x.json.tmp").exists());
    }

    #[test]
    fn backoff_doubles_to_a_minute() {
        assert_eq!(retry_delay(0), Duration::from_secs(1));
        assert_eq!(retry_delay(3), Duration::from_secs(8));
        assert_eq!(retry_delay(20), Duration::from_secs(60));
    }
}
