//! The daemon's admin socket (`[pool_manager] sock_file`, mode 0600: root only): a small
//! JSON API over HTTP/1.1 for `kuryr pool` and `kuryr stats`. It is not the plugin socket,
//! so Docker never sees these paths.
//!
//! - `GET /v1/pools`: pools and counters;
//! - `POST /v1/pools/populate` `{"network", "subnet"?, "count"}`: add ports now;
//! - `POST /v1/pools/free` `{"network"?}`: delete free pool ports;
//! - `GET /v1/stats`, `POST /v1/stats/reset`: per-call timings and Neutron requests;
//! - `POST /v1/gc` `{"dry_run", "min_age"?, "confirm_after"?}`: the reconciler, now.

pub mod client;

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kuryr_driver::{Driver, DriverError};
use serde::{Deserialize, Serialize};

use crate::reconciler::{GcRequest, Reconciler};
use crate::server::metrics::Metrics;

/// Ports one populate request may add (a typo must not exhaust a subnet).
pub const MAX_POPULATE: usize = 1000;

#[derive(Clone)]
struct Admin {
    driver: Arc<Driver>,
    metrics: Arc<Metrics>,
    reconciler: Arc<Reconciler>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PopulateRequest {
    pub network: String,
    #[serde(default)]
    pub subnet: Option<String>,
    pub count: usize,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct FreeRequest {
    #[serde(default)]
    pub network: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Freed {
    pub deleted: usize,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AdminError {
    pub error: String,
}

pub fn router(driver: Arc<Driver>, metrics: Arc<Metrics>, reconciler: Arc<Reconciler>) -> Router {
    Router::new()
        .route("/v1/pools", get(pools))
        .route("/v1/pools/populate", post(populate))
        .route("/v1/pools/free", post(free))
        .route("/v1/stats", get(stats))
        .route("/v1/stats/reset", post(reset))
        .route("/v1/gc", post(gc))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "no such admin path; kuryr pool and kuryr stats know the paths".into(),
            )
        })
        .with_state(Admin {
            driver,
            metrics,
            reconciler,
        })
}

async fn pools(State(admin): State<Admin>) -> Response {
    Json(admin.driver.pool_report()).into_response()
}

async fn populate(
    State(admin): State<Admin>,
    body: Result<Json<PopulateRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    if req.count == 0 || req.count > MAX_POPULATE {
        return error(
            StatusCode::BAD_REQUEST,
            format!("count must be 1 to {MAX_POPULATE}, not {}", req.count),
        );
    }
    match admin
        .driver
        .populate_pool(&req.network, req.subnet.as_deref(), req.count)
        .await
    {
        Ok(done) => Json(done).into_response(),
        Err(e) => driver_error(e),
    }
}

async fn free(
    State(admin): State<Admin>,
    body: Result<Json<FreeRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    match admin.driver.free_pools(req.network.as_deref()).await {
        Ok(deleted) => Json(Freed { deleted }).into_response(),
        Err(e) => driver_error(e),
    }
}

async fn stats(State(admin): State<Admin>) -> Response {
    Json(admin.metrics.report()).into_response()
}

async fn reset(State(admin): State<Admin>) -> Response {
    admin.metrics.reset();
    Json(serde_json::json!({})).into_response()
}

async fn gc(
    State(admin): State<Admin>,
    body: Result<Json<GcRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    for (name, value) in [
        ("min_age", req.min_age),
        ("confirm_after", req.confirm_after),
    ] {
        if value.is_some_and(|v| !(0.0..=3600.0).contains(&v)) {
            return error(
                StatusCode::BAD_REQUEST,
                format!("{name} must be 0 to 3600 seconds"),
            );
        }
    }
    match admin.reconciler.gc(&req).await {
        Ok(report) => Json(report).into_response(),
        Err(e) => driver_error(e),
    }
}

fn driver_error(e: DriverError) -> Response {
    let status = StatusCode::from_u16(e.status())
        .ok()
        .filter(|s| !s.is_success())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    error(status, e.report())
}

fn error(status: StatusCode, error: String) -> Response {
    (status, Json(AdminError { error })).into_response()
}
