//! Whether Neutron can be used yet. The daemon starts before Neutron may be up (after a
//! reboot, say): it listens at once, probes Neutron's extensions in the background with
//! backoff, and meanwhile answers calls that need Neutron with why it cannot.

use std::time::Duration;

use tokio::sync::{watch, Notify};

use kuryr_openstack::error::chain;
use kuryr_openstack::neutron::Neutron;

use crate::error::{DriverError, Result};

/// Extensions without which kuryr cannot work: subnetpools for IPAM, tags for the mapping.
const REQUIRED: &[(&str, &str)] = &[
    ("subnet_allocation", "subnetpools (IPAM)"),
    (
        "standard-attr-tag",
        "tags on networks, subnets, subnetpools and ports",
    ),
];
/// Lets a port be created with its tags in the same request.
const TAGS_ON_CREATE: &str = "tag-ports-during-bulk-creation";

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Probing { last_error: Option<String> },
    Ready { tags_on_port_create: bool },
}

/// How long a call waits for a probe it triggered before answering "not reachable".
const WAIT_FOR_PROBE: Duration = Duration::from_secs(15);

#[derive(Debug)]
pub struct Readiness {
    state: watch::Sender<State>,
    /// Wakes the prober before its backoff ends: a call that needs Neutron asks for a probe
    /// now, so Neutron coming back is noticed at once, not after up to 30 s.
    kick: Notify,
}

impl Default for Readiness {
    fn default() -> Self {
        Readiness {
            state: watch::Sender::new(State::Probing { last_error: None }),
            kick: Notify::new(),
        }
    }
}

impl Readiness {
    /// Ok when Neutron is usable; otherwise asks for a probe now, waits for its outcome
    /// (bounded), and answers with why Neutron cannot be used.
    pub async fn ready(&self) -> Result<()> {
        if self.is_ready() {
            return Ok(());
        }
        let mut seen = self.state.subscribe();
        seen.mark_unchanged();
        self.kick.notify_one();
        let _ = tokio::time::timeout(WAIT_FOR_PROBE, seen.changed()).await;
        match &*self.state.borrow() {
            State::Ready { .. } => Ok(()),
            State::Probing { last_error } => Err(DriverError::unavailable(format!(
                "Neutron not reachable yet{}; kuryr keeps trying in the background, \
                 retry when Neutron is up (kuryr doctor shows what is wrong)",
                last_error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            ))),
        }
    }

    pub fn is_ready(&self) -> bool {
        matches!(&*self.state.borrow(), State::Ready { .. })
    }

    /// Whether ports can carry their tags from creation on.
    pub fn tags_on_port_create(&self) -> bool {
        matches!(
            &*self.state.borrow(),
            State::Ready {
                tags_on_port_create: true
            }
        )
    }

    fn set(&self, state: State) {
        self.state.send_replace(state);
    }
}

/// Probe until Neutron answers with every required extension.
pub(crate) async fn probe_until_ready(neutron: &Neutron, readiness: &Readiness) {
    let mut delay = Duration::from_secs(1);
    loop {
        let error = match neutron.extensions().await {
            Ok(extensions) => {
                let has = |alias: &str| extensions.iter().any(|e| e.alias == alias);
                let missing: Vec<String> = REQUIRED
                    .iter()
                    .filter(|(alias, _)| !has(alias))
                    .map(|(alias, what)| format!("{alias} ({what})"))
                    .collect();
                if missing.is_empty() {
                    let tags_on_port_create = has(TAGS_ON_CREATE);
                    readiness.set(State::Ready {
                        tags_on_port_create,
                    });
                    tracing::info!(tags_on_port_create, "Neutron is usable");
                    return;
                }
                format!(
                    "Neutron lacks the extension(s) {}: enable them in Neutron \
                     (service_plugins / ML2 extension_drivers)",
                    missing.join(", ")
                )
            }
            Err(e) => format!("{}; {}", chain(&e), e.hint()),
        };
        tracing::warn!(retry_in = ?delay, "Neutron not usable yet: {error}");
        readiness.set(State::Probing {
            last_error: Some(error),
        });
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = readiness.kick.notified() => {}
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}
