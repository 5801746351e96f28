//! The plugin's HTTP side: every `POST /<Subsystem>.<Method>` is parsed and validated by
//! `kuryr-libnetwork`, answered by the driver, and every failure is a non-2xx status with
//! `{"Err": "..."}` (the IPAM side of Docker ignores `Err` in a 200).

pub mod cpu_wait;
pub mod listen;
pub mod metrics;
pub mod prometheus;

use std::sync::Arc;
use std::time::Instant;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use kuryr_driver::Driver;
use kuryr_libnetwork::plugin::ErrorResponse;
use kuryr_libnetwork::MAX_BODY_BYTES;
use kuryr_openstack::accounting::{self, Tally};
use tracing::Instrument;

use metrics::Metrics;

/// Content type of plugin answers (Docker does not check it; this is the protocol's).
const PLUGIN_JSON: &str = "application/vnd.docker.plugins.v1+json";

/// What the plugin's handler needs.
#[derive(Clone)]
pub struct Plugin {
    pub driver: Arc<Driver>,
    pub metrics: Arc<Metrics>,
}

/// The router: one handler for every path, since the protocol is path-dispatched RPC.
pub fn router(driver: Arc<Driver>, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .fallback(handle)
        .with_state(Plugin { driver, metrics })
}

async fn handle(State(plugin): State<Plugin>, request: Request) -> Response {
    let started = Instant::now();
    let path = request.uri().path().to_owned();
    let bytes = match to_bytes(request.into_body(), MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "{path}: the body is larger than the {MAX_BODY_BYTES} bytes a plugin call may have, or was cut off"
                ),
            )
        }
    };
    let call = match kuryr_libnetwork::parse(&path, &bytes) {
        Ok(call) => call,
        Err(e) => {
            tracing::warn!(%path, "refused: {e}");
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            return error(status, e.to_string());
        }
    };
    let name = call.name();
    let ids = call.ids();
    // Every line the call logs names it and what it is about.
    let span = tracing::info_span!(
        "call",
        call = name,
        network = ids.network,
        endpoint = ids.endpoint,
        pool = ids.pool
    );
    // The call runs in its own task: Docker closing the connection (its timeout, a restart)
    // must not stop a Neutron operation half-way, and a panic becomes a 500, not a hang.
    let task = tokio::spawn(
        async move {
            let tally = Arc::new(Tally::default());
            let cpu = cpu_wait::mark();
            let answer = accounting::scoped(tally.clone(), plugin.driver.handle(call)).await;
            let took = started.elapsed();
            plugin
                .metrics
                .record(name, took, &tally, cpu_wait::since(cpu), answer.is_ok());
            let requests = tally.request_ids().join(",");
            match &answer {
                Ok(_) => tracing::info!(?took, neutron_requests = %requests, "answered"),
                Err(e) => {
                    tracing::warn!(?took, neutron_requests = %requests, status = e.status(), errno = e.errno(), "{}", e.report())
                }
            }
            answer
        }
        .instrument(span.clone()),
    );
    let answer = match task.await {
        Ok(answer) => answer,
        Err(e) => {
            tracing::error!(call = name, "the call failed inside kuryr: {e}");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "kuryr stopped inside this call ({e}); the log of kuryr serve has the details"
                ),
            );
        }
    };
    match answer {
        Ok(value) => {
            let body = serde_json::to_vec(&value).unwrap_or_else(|_| b"{}".to_vec());
            ([(header::CONTENT_TYPE, PLUGIN_JSON)], body).into_response()
        }
        Err(e) => {
            let report = e.report();
            let status = StatusCode::from_u16(e.status())
                .ok()
                .filter(|s| !s.is_success())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            error(status, report)
        }
    }
}

fn error(status: StatusCode, message: String) -> Response {
    let body = serde_json::to_vec(&ErrorResponse { err: message })
        .unwrap_or_else(|_| br#"{"Err":"error"}"#.to_vec());
    (
        status,
        [(header::CONTENT_TYPE, PLUGIN_JSON)],
        Body::from(body),
    )
        .into_response()
}
