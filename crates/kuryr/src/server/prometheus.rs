//! Prometheus metrics and health checks, on a TCP listener of their own (`[metrics]
//! bind_address`, off unless set): `GET /metrics` (OpenMetrics text), `GET /healthz` (the
//! daemon answers) and `GET /readyz` (Neutron is usable, so calls that need it are served).
//!
//! Plugin calls are counted by call and outcome, with histograms of their whole time, of
//! kuryr's own time and of the time they waited for Keystone and Neutron; every request to
//! those services by service, method, resource and status (`none`: no answer came); the
//! reconciler's removals by kind. Pools and readiness are read at each scrape.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use kuryr_driver::Driver;
use kuryr_openstack::accounting::RequestSeen;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::metrics::Metrics;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallOutcome {
    call: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabel {
    call: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    service: &'static str,
    method: &'static str,
    resource: &'static str,
    status: Status,
}

/// An answer's status, or `none` when no answer came.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
struct Status(Option<u16>);

impl EncodeLabelValue for Status {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        match self.0 {
            Some(code) => EncodeLabelValue::encode(&code, encoder),
            None => EncodeLabelValue::encode(&"none", encoder),
        }
    }
}

/// The resources kuryr asks for, as label values; any other is `other` (the label set
/// stays small whatever a proxy or a new API version puts in a path).
const RESOURCES: &[&str] = &[
    "auth",
    "ports",
    "networks",
    "subnets",
    "subnetpools",
    "routers",
    "floatingips",
    "security-groups",
    "security-group-rules",
    "trunks",
    "agents",
    "extensions",
    "network-ip-availabilities",
    "tags",
];

fn resource_label(resource: &str) -> &'static str {
    RESOURCES
        .iter()
        .find(|r| **r == resource)
        .copied()
        .unwrap_or("other")
}

fn method_label(method: &str) -> &'static str {
    ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]
        .into_iter()
        .find(|m| *m == method)
        .unwrap_or("other")
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabel {
    service: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    network: String,
    subnet: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabel {
    event: &'static str,
}

/// From half a millisecond to about 16 s.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

type Seconds = Family<CallLabel, Histogram, fn() -> Histogram>;

/// The metrics, registered once.
#[derive(Debug)]
pub struct Exporter {
    registry: Registry,
    calls: Family<CallOutcome, Counter>,
    call_seconds: Seconds,
    own_seconds: Seconds,
    waited_seconds: Seconds,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Family<ServiceLabel, Histogram, fn() -> Histogram>,
    orphans_removed: Family<KindLabel, Counter>,
    reconciler_errors: Counter,
    /// Read at each scrape.
    pool_free: Family<PoolLabels, Gauge>,
    pool_held: Family<PoolLabels, Gauge>,
    pool_events: Family<EventLabel, Gauge>,
    ready: Gauge,
    resident_bytes: Gauge,
    /// Scrapes run one at a time (the gauges above are set, then encoded).
    scrape: Mutex<()>,
}

impl Default for Exporter {
    fn default() -> Self {
        Exporter::new()
    }
}

impl Exporter {
    pub fn new() -> Exporter {
        let mut registry = Registry::with_prefix("kuryr");
        let calls = Family::<CallOutcome, Counter>::default();
        let call_seconds = Seconds::new_with_constructor(seconds);
        let own_seconds = Seconds::new_with_constructor(seconds);
        let waited_seconds = Seconds::new_with_constructor(seconds);
        let requests = Family::<RequestLabels, Counter>::default();
        let request_seconds = Family::new_with_constructor(seconds as fn() -> Histogram);
        let orphans_removed = Family::<KindLabel, Counter>::default();
        let reconciler_errors = Counter::default();
        let pool_free = Family::<PoolLabels, Gauge>::default();
        let pool_held = Family::<PoolLabels, Gauge>::default();
        let pool_events = Family::<EventLabel, Gauge>::default();
        let ready = Gauge::default();
        let resident_bytes = Gauge::default();
        registry.register(
            "plugin_calls",
            "Docker plugin calls answered, by call and outcome (ok, error)",
            calls.clone(),
        );
        registry.register(
            "plugin_call_seconds",
            "Time to answer a plugin call",
            call_seconds.clone(),
        );
        registry.register(
            "plugin_call_own_seconds",
            "Of a plugin call's time, kuryr's own (not waiting for Keystone or Neutron)",
            own_seconds.clone(),
        );
        registry.register(
            "plugin_call_openstack_seconds",
            "Of a plugin call's time, waiting for Keystone and Neutron",
            waited_seconds.clone(),
        );
        registry.register(
            "openstack_requests",
            "Requests to Keystone and Neutron (each attempt), by status (none: no answer)",
            requests.clone(),
        );
        registry.register(
            "openstack_request_seconds",
            "Time to an answer from Keystone or Neutron",
            request_seconds.clone(),
        );
        registry.register(
            "reconciler_orphans_removed",
            "Orphans the reconciler removed, by kind",
            orphans_removed.clone(),
        );
        registry.register(
            "reconciler_errors",
            "Orphans the reconciler failed to remove (tried again next round)",
            reconciler_errors.clone(),
        );
        registry.register(
            "pool_free_ports",
            "Free ports waiting in this host's pool, by network and subnet",
            pool_free.clone(),
        );
        registry.register(
            "pool_held_ports",
            "Pool ports containers hold, by network and subnet",
            pool_held.clone(),
        );
        registry.register(
            "pool_events",
            "Pool events since the start: hits, misses, created, recycled, deleted, recovered",
            pool_events.clone(),
        );
        registry.register(
            "ready",
            "1 when Neutron is usable and calls that need it are served",
            ready.clone(),
        );
        registry.register(
            "resident_memory_bytes",
            "Resident memory of the daemon",
            resident_bytes.clone(),
        );
        Exporter {
            registry,
            calls,
            call_seconds,
            own_seconds,
            waited_seconds,
            requests,
            request_seconds,
            orphans_removed,
            reconciler_errors,
            pool_free,
            pool_held,
            pool_events,
            ready,
            resident_bytes,
            scrape: Mutex::new(()),
        }
    }

    /// One plugin call: its whole time and the part spent waiting for OpenStack.
    pub fn call(&self, call: &'static str, took: Duration, waited: Duration, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.calls
            .get_or_create(&CallOutcome { call, outcome })
            .inc();
        let label = CallLabel { call };
        self.call_seconds
            .get_or_create(&label)
            .observe(took.as_secs_f64());
        self.own_seconds
            .get_or_create(&label)
            .observe(took.saturating_sub(waited).as_secs_f64());
        self.waited_seconds
            .get_or_create(&label)
            .observe(waited.as_secs_f64());
    }

    /// One request to Keystone or Neutron.
    pub fn request(&self, seen: &RequestSeen<'_>) {
        let service = seen.service.label();
        self.requests
            .get_or_create(&RequestLabels {
                service,
                method: method_label(seen.method),
                resource: resource_label(seen.resource),
                status: Status(seen.status),
            })
            .inc();
        self.request_seconds
            .get_or_create(&ServiceLabel { service })
            .observe(seen.took.as_secs_f64());
    }

    /// What a reconciler round removed, and what it failed to.
    pub fn reconciled(&self, removed_kinds: &[String], errors: usize) {
        for kind in removed_kinds {
            self.orphans_removed
                .get_or_create(&KindLabel { kind: kind.clone() })
                .inc();
        }
        self.reconciler_errors.inc_by(errors as u64);
    }

    /// The OpenMetrics text, with the pools, readiness and memory read now.
    pub fn scrape(&self, driver: &Driver) -> String {
        let _one = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        let report = driver.pool_report();
        self.pool_free.clear();
        self.pool_held.clear();
        for pool in &report.pools {
            let labels = PoolLabels {
                network: pool.key.network_id.clone(),
                subnet: pool.key.subnet_id.clone(),
            };
            gauge_add(&self.pool_free.get_or_create(&labels), pool.free);
            gauge_add(&self.pool_held.get_or_create(&labels), pool.held);
        }
        let c = &report.counters;
        for (event, n) in [
            ("hits", c.hits),
            ("misses", c.misses),
            ("created", c.created),
            ("recycled", c.recycled),
            ("deleted", c.deleted),
            ("recovered", c.recovered),
        ] {
            self.pool_events
                .get_or_create(&EventLabel { event })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        self.ready.set(i64::from(driver.readiness().is_ready()));
        self.resident_bytes
            .set(i64::try_from(resident_kib().saturating_mul(1024)).unwrap_or(i64::MAX));
        let mut text = String::new();
        if encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}

fn gauge_add(gauge: &Gauge, n: usize) {
    gauge.inc_by(i64::try_from(n).unwrap_or(i64::MAX));
}

/// VmRSS of this process in KiB (0 when /proc cannot say).
fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[derive(Clone)]
struct Scraped {
    driver: Arc<Driver>,
    metrics: Arc<Metrics>,
}

/// `/metrics`, `/healthz` and `/readyz`.
pub fn router(driver: Arc<Driver>, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(Scraped { driver, metrics })
}

async fn scrape(State(s): State<Scraped>) -> Response {
    let text = s.metrics.exporter.scrape(&s.driver);
    ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response()
}

async fn healthz() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

async fn readyz(State(s): State<Scraped>) -> Response {
    if s.driver.readiness().is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: Neutron is not usable yet (kuryr serve's log says why)\n",
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kuryr_openstack::error::Service;

    #[test]
    fn calls_and_requests_are_counted_by_their_labels() {
        let e = Exporter::new();
        e.call(
            "CreateEndpoint",
            Duration::from_millis(30),
            Duration::from_millis(20),
            true,
        );
        e.call(
            "CreateEndpoint",
            Duration::from_millis(5),
            Duration::ZERO,
            false,
        );
        e.request(&RequestSeen {
            service: Service::Neutron,
            method: "POST",
            resource: "ports",
            status: Some(201),
            request_id: Some("req-1"),
            took: Duration::from_millis(20),
        });
        e.request(&RequestSeen {
            service: Service::Neutron,
            method: "GET",
            resource: "ports",
            status: None,
            request_id: None,
            took: Duration::from_millis(1),
        });
        e.reconciled(&["endpoint_port".to_owned()], 1);
        let mut text = String::new();
        encode(&mut text, &e.registry).unwrap();
        for line in [
            r#"kuryr_plugin_calls_total{call="CreateEndpoint",outcome="ok"} 1"#,
            r#"kuryr_plugin_calls_total{call="CreateEndpoint",outcome="error"} 1"#,
            r#"kuryr_plugin_call_seconds_count{call="CreateEndpoint"} 2"#,
            r#"kuryr_plugin_call_openstack_seconds_sum{call="CreateEndpoint"} 0.02"#,
            r#"kuryr_openstack_requests_total{service="neutron",method="POST",resource="ports",status="201"} 1"#,
            r#"kuryr_openstack_requests_total{service="neutron",method="GET",resource="ports",status="none"} 1"#,
            r#"kuryr_reconciler_orphans_removed_total{kind="endpoint_port"} 1"#,
            "kuryr_reconciler_errors_total 1",
        ] {
            assert!(text.contains(line), "{line} in:\n{text}");
        }
    }
}
