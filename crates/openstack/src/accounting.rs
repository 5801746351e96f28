//! Who waits for OpenStack, and how long: a caller runs its work inside [`scoped`] with a
//! [`Tally`], and every request sent meanwhile (by that task) is counted in it; requests
//! sent outside any scope (background work) are counted in [`background`].
//!
//! This lets a daemon tell its own time per call from the time it waited for the services,
//! and the requests on a client's path from those it made later.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::error::Service;

/// Requests and time spent waiting for answers.
#[derive(Debug, Default)]
pub struct Tally {
    neutron_requests: AtomicU64,
    keystone_requests: AtomicU64,
    waited_us: AtomicU64,
}

impl Tally {
    pub fn neutron_requests(&self) -> u64 {
        self.neutron_requests.load(Ordering::Relaxed)
    }

    pub fn keystone_requests(&self) -> u64 {
        self.keystone_requests.load(Ordering::Relaxed)
    }

    /// Time spent waiting for answers (requests sent one after another add up).
    pub fn waited(&self) -> Duration {
        Duration::from_micros(self.waited_us.load(Ordering::Relaxed))
    }

    pub fn reset(&self) {
        self.neutron_requests.store(0, Ordering::Relaxed);
        self.keystone_requests.store(0, Ordering::Relaxed);
        self.waited_us.store(0, Ordering::Relaxed);
    }

    fn add(&self, service: Service, waited: Duration) {
        let counter = match service {
            Service::Neutron => &self.neutron_requests,
            Service::Keystone => &self.keystone_requests,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
        self.waited_us.fetch_add(us, Ordering::Relaxed);
    }
}

tokio::task_local! {
    static SCOPE: Arc<Tally>;
}

static BACKGROUND: Tally = Tally {
    neutron_requests: AtomicU64::new(0),
    keystone_requests: AtomicU64::new(0),
    waited_us: AtomicU64::new(0),
};

/// Run `work`, counting the requests it sends in `tally`. Tasks it spawns are not in the
/// scope: what they send counts as background.
pub async fn scoped<F: Future>(tally: Arc<Tally>, work: F) -> F::Output {
    SCOPE.scope(tally, work).await
}

/// Requests sent outside any [`scoped`] work.
pub fn background() -> &'static Tally {
    &BACKGROUND
}

/// Count one request (each attempt of a retried one) where it belongs.
pub(crate) fn record(service: Service, waited: Duration) {
    if SCOPE.try_with(|t| t.add(service, waited)).is_err() {
        BACKGROUND.add(service, waited);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_in_a_scope_are_not_background() {
        let tally = Arc::new(Tally::default());
        let before = background().neutron_requests();
        scoped(tally.clone(), async {
            record(Service::Neutron, Duration::from_millis(3));
            record(Service::Keystone, Duration::from_millis(2));
        })
        .await;
        assert_eq!(tally.neutron_requests(), 1);
        assert_eq!(tally.keystone_requests(), 1);
        assert_eq!(tally.waited(), Duration::from_millis(5));
        record(Service::Neutron, Duration::from_millis(1));
        assert!(background().neutron_requests() > before);
    }
}
