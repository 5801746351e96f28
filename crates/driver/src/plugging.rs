//! Waiting for ports to turn ACTIVE (`vif_plugging_is_fatal`).
//!
//! A burst of containers must not become a burst of per-port polls: every waiter registers
//! here, and one task asks Neutron for the status of all pending ports in one list call per
//! round, waking each waiter whose port is ACTIVE. The task runs only while someone waits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kuryr_openstack::neutron::{Filters, Neutron, Port};
use tokio::sync::oneshot;

/// How often the pending ports are looked up. Agents report a plugged port within one or
/// two of their own polling intervals (2 s for neutron-openvswitch-agent).
const ROUND: Duration = Duration::from_millis(500);

/// At most this many ids in one list request, to keep the URL of a big burst short.
const IDS_PER_REQUEST: usize = 100;

/// Ports some CreateEndpoint waits for, and whether a watcher task runs.
#[derive(Default)]
pub(crate) struct ActiveWatcher {
    state: Arc<Mutex<Pending>>,
}

#[derive(Default)]
struct Pending {
    waiters: HashMap<String, Vec<oneshot::Sender<()>>>,
    watching: bool,
}

/// Why a wait ended without the port being ACTIVE.
#[derive(Debug)]
pub(crate) enum NotActive {
    /// Still this status when the time was up.
    Timeout(String),
}

impl ActiveWatcher {
    /// Wait until the port is ACTIVE, or `timeout` (zero: no limit) passed.
    pub(crate) async fn wait(
        &self,
        neutron: &Neutron,
        port_id: &str,
        timeout: Duration,
    ) -> Result<(), NotActive> {
        let (tx, rx) = oneshot::channel();
        let start_task = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state
                .waiters
                .entry(port_id.to_owned())
                .or_default()
                .push(tx);
            !std::mem::replace(&mut state.watching, true)
        };
        if start_task {
            tokio::spawn(watch(neutron.clone(), self.state.clone()));
        }
        let woken = if timeout.is_zero() {
            rx.await.is_ok()
        } else {
            matches!(tokio::time::timeout(timeout, rx).await, Ok(Ok(())))
        };
        if woken {
            return Ok(());
        }
        // The watcher drops closed senders; the last status says what the port is doing.
        let status = neutron
            .ports()
            .get(port_id)
            .await
            .map(|p| p.status)
            .unwrap_or_else(|e| format!("unknown ({e})"));
        if status == "ACTIVE" {
            Ok(())
        } else {
            Err(NotActive::Timeout(status))
        }
    }
}

/// One round per [`ROUND`] while ports are pending; exits when none are.
async fn watch(neutron: Neutron, state: Arc<Mutex<Pending>>) {
    loop {
        let ids: Vec<String> = {
            let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
            state.waiters.retain(|_, senders| {
                senders.retain(|s| !s.is_closed());
                !senders.is_empty()
            });
            if state.waiters.is_empty() {
                state.watching = false;
                return;
            }
            state.waiters.keys().cloned().collect()
        };
        for chunk in ids.chunks(IDS_PER_REQUEST) {
            let filters = chunk
                .iter()
                .fold(Filters::new(), |f, id| f.eq("id", id.as_str()))
                .eq("status", "ACTIVE")
                .fields(["id", "status"]);
            match neutron.ports().list(&filters).await {
                Ok(ports) => wake(&state, &ports),
                // The waiters' timeouts bound this; a later round retries.
                Err(e) => tracing::debug!("looking up pending ports: {e}"),
            }
        }
        tokio::time::sleep(ROUND).await;
    }
}

fn wake(state: &Mutex<Pending>, active: &[Port]) {
    let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
    for port in active.iter().filter(|p| p.status == "ACTIVE") {
        for sender in state.waiters.remove(&port.id).unwrap_or_default() {
            let _ = sender.send(());
        }
    }
}
