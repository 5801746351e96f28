//! Who waits for OpenStack, and how long: a caller runs its work inside [`scoped`] with a
//! [`Tally`], and every request sent meanwhile (by that task) is counted in it; requests
//! sent outside any scope (background work) are counted in [`background`].
//!
//! This lets a daemon tell its own time per call from the time it waited for the services,
//! and the requests on a client's path from those it made later.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::Service;

/// Requests and time spent waiting for answers.
#[derive(Debug, Default)]
pub struct Tally {
    neutron_requests: AtomicU64,
    keystone_requests: AtomicU64,
    waited_us: AtomicU64,
    /// The services' ids of the requests (`x-openstack-request-id`), the first
    /// [`REQUEST_IDS_KEPT`].
    request_ids: Mutex<Vec<String>>,
}

/// Request ids a [`Tally`] keeps (a call sends a few requests; a bulk job many).
pub const REQUEST_IDS_KEPT: usize = 32;

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

    /// The services' ids of the requests counted, for logs.
    pub fn request_ids(&self) -> Vec<String> {
        self.request_ids
            .lock()
            .map(|ids| ids.clone())
            .unwrap_or_default()
    }

    pub fn reset(&self) {
        self.neutron_requests.store(0, Ordering::Relaxed);
        self.keystone_requests.store(0, Ordering::Relaxed);
        self.waited_us.store(0, Ordering::Relaxed);
        if let Ok(mut ids) = self.request_ids.lock() {
            ids.clear();
        }
    }

    fn add_id(&self, id: &str) {
        if let Ok(mut ids) = self.request_ids.lock() {
            if ids.len() < REQUEST_IDS_KEPT {
                ids.push(id.to_owned());
            }
        }
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
    request_ids: Mutex::new(Vec::new()),
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

/// One request (each attempt of a retried one), as an observer sees it.
#[derive(Debug, Clone, Copy)]
pub struct RequestSeen<'a> {
    pub service: Service,
    pub method: &'a str,
    /// The kind of resource: the first path segment after the API version (`ports`,
    /// `networks`, `auth`), never an id.
    pub resource: &'a str,
    /// The answer's status; None when no answer came (refused, timed out, cut off).
    pub status: Option<u16>,
    /// The service's id of the request (`x-openstack-request-id`), when it answered one.
    pub request_id: Option<&'a str>,
    pub took: Duration,
}

type Observer = Box<dyn Fn(&RequestSeen<'_>) + Send + Sync>;

static OBSERVER: std::sync::OnceLock<Observer> = std::sync::OnceLock::new();

/// Have `observer` see every request from now on (a daemon's metrics). Only the first
/// observer set counts; returns whether this one did.
pub fn observe(observer: impl Fn(&RequestSeen<'_>) + Send + Sync + 'static) -> bool {
    OBSERVER.set(Box::new(observer)).is_ok()
}

/// Count one request (each attempt of a retried one) where it belongs.
pub(crate) fn record(seen: &RequestSeen<'_>) {
    let in_scope = SCOPE.try_with(|t| {
        t.add(seen.service, seen.took);
        if let Some(id) = seen.request_id {
            t.add_id(id);
        }
    });
    if in_scope.is_err() {
        // Background work's ids are not kept: nothing reads them.
        BACKGROUND.add(seen.service, seen.took);
    }
    if let Some(observer) = OBSERVER.get() {
        observer(seen);
    }
}

/// [`RequestSeen::resource`] of a URL path.
pub(crate) fn resource(path: &str) -> &str {
    resource_of(path)
}

/// The first path segment after the API version: `/v2.0/ports/<id>/tags/x` is `ports`.
fn resource_of(path: &str) -> &str {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let is_version = |s: &&str| {
        s.strip_prefix('v')
            .is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
    };
    // Behind a path prefix (`/networking/v2.0/...`) the version comes later.
    let first = match segments.iter().position(is_version) {
        Some(at) => segments.get(at + 1),
        None => segments.first(),
    };
    let first = first.copied().unwrap_or("");
    first.split('.').next().unwrap_or(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_in_a_scope_are_not_background() {
        let tally = Arc::new(Tally::default());
        let before = background().neutron_requests();
        scoped(tally.clone(), async {
            record(&seen(Service::Neutron, Some("req-1"), 3));
            record(&seen(Service::Keystone, None, 2));
        })
        .await;
        assert_eq!(tally.neutron_requests(), 1);
        assert_eq!(tally.keystone_requests(), 1);
        assert_eq!(tally.waited(), Duration::from_millis(5));
        assert_eq!(tally.request_ids(), vec!["req-1".to_owned()]);
        record(&seen(Service::Neutron, None, 1));
        assert!(background().neutron_requests() > before);
    }

    fn seen(service: Service, request_id: Option<&str>, ms: u64) -> RequestSeen<'_> {
        RequestSeen {
            service,
            method: "GET",
            resource: "ports",
            status: Some(200),
            request_id,
            took: Duration::from_millis(ms),
        }
    }

    #[test]
    fn the_resource_is_the_segment_after_the_version() {
        assert_eq!(resource_of("/v2.0/ports/abc/tags/x"), "ports");
        assert_eq!(
            resource_of("/networking/v2.0/subnetpools.json"),
            "subnetpools"
        );
        assert_eq!(resource_of("/v3/auth/tokens"), "auth");
        assert_eq!(resource_of("/v2.0/"), "");
        assert_eq!(resource_of("/"), "");
    }
}
