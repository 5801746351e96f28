//! The reconciler's rounds: at start and every `[DEFAULT] reconcile_interval` in `kuryr
//! serve`, and on demand for `kuryr gc`. Each round reads Docker's view when its API socket
//! answers, asks the driver for orphans ([`kuryr_driver::reconcile`]) and removes those seen
//! twice: in the previous periodic round, or for `kuryr gc` in two looks a moment apart.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kuryr_driver::reconcile::{Finding, OrphanKind, Survey};
use kuryr_driver::{Driver, DriverError};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::docker_api;
use crate::server::metrics::Metrics;

/// `kuryr gc`'s pause between its two looks, by default.
pub const DEFAULT_CONFIRM_AFTER: Duration = Duration::from_secs(3);

pub struct Reconciler {
    driver: Arc<Driver>,
    docker_socket: Option<PathBuf>,
    min_age: Duration,
    /// The last periodic round's look; the lock also keeps rounds from overlapping.
    previous: Mutex<Option<Survey>>,
    /// Where removals are counted for Prometheus.
    metrics: Option<Arc<Metrics>>,
}

/// `POST /v1/gc` on the admin socket.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GcRequest {
    /// Report only.
    #[serde(default)]
    pub dry_run: bool,
    /// Overrides `[DEFAULT] orphan_min_age`, in seconds.
    #[serde(default)]
    pub min_age: Option<f64>,
    /// Seconds between the two looks.
    #[serde(default)]
    pub confirm_after: Option<f64>,
    /// Instead of looking for orphans: remove the mappings of this control plane, which is
    /// gone for good ([`kuryr_driver::forget`]).
    #[serde(default)]
    pub forget_control_plane: Option<String>,
}

/// What a round found and did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GcReport {
    pub dry_run: bool,
    /// Orphans seen twice (removed, unless `dry_run`).
    pub orphans: Vec<Orphan>,
    pub removed: usize,
    /// Kuryr ports, networks, subnetpools, floating IPs and plugged interfaces of this host
    /// looked at.
    pub ports: usize,
    #[serde(default)]
    pub networks: usize,
    #[serde(default)]
    pub subnetpools: usize,
    #[serde(default)]
    pub floating_ips: usize,
    pub interfaces: usize,
    /// What was not compared, and why.
    pub notes: Vec<String>,
    /// Removals that failed (tried again next round).
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Orphan {
    pub kind: String,
    pub resource: String,
    pub why: String,
}

impl Reconciler {
    pub fn new(
        driver: Arc<Driver>,
        docker_socket: Option<PathBuf>,
        min_age: Duration,
    ) -> Reconciler {
        Reconciler {
            driver,
            docker_socket,
            min_age,
            previous: Mutex::new(None),
            metrics: None,
        }
    }

    /// Count what the rounds remove in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Reconciler {
        self.metrics = Some(metrics);
        self
    }

    /// Every `interval`, from the start: a periodic round (errors are logged).
    pub async fn run(self: Arc<Self>, interval: Duration) {
        loop {
            match self.round().await {
                Ok(report) if !report.orphans.is_empty() || !report.errors.is_empty() => {
                    tracing::info!(
                        orphans = report.orphans.len(),
                        removed = report.removed,
                        errors = ?report.errors,
                        "reconciler round"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("reconciler round failed: {}", e.report()),
            }
            tokio::time::sleep(interval).await;
        }
    }

    /// One periodic round: orphans also seen, unchanged, by the previous round go.
    ///
    /// # Errors
    /// Neutron could not be read.
    pub async fn round(&self) -> Result<GcReport, DriverError> {
        let mut previous = self.previous.lock().await;
        let now = self.look(self.min_age, false).await?;
        let confirmed = previous
            .as_ref()
            .map(|p| now.confirmed_by(p))
            .unwrap_or_default();
        let report = self.remove(&now, confirmed, false).await;
        *previous = Some(now);
        Ok(report)
    }

    /// `kuryr gc`: two looks `confirm_after` apart; what both saw, unchanged, goes.
    ///
    /// # Errors
    /// Neutron could not be read.
    pub async fn gc(&self, req: &GcRequest) -> Result<GcReport, DriverError> {
        if let Some(id) = &req.forget_control_plane {
            let forgotten = self.driver.forget_control_plane(id, req.dry_run).await?;
            let mut report = GcReport {
                dry_run: req.dry_run,
                ..GcReport::default()
            };
            for f in forgotten {
                match f.error {
                    Some(e) => report.errors.push(format!("{}: {e}", f.resource)),
                    None if !req.dry_run => report.removed += 1,
                    None => {}
                }
                report.orphans.push(Orphan {
                    kind: f.kind.to_owned(),
                    resource: f.resource,
                    why: f.what,
                });
            }
            return Ok(report);
        }
        let _rounds = self.previous.lock().await;
        let min_age = req
            .min_age
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .unwrap_or(self.min_age);
        let pause = req
            .confirm_after
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .unwrap_or(DEFAULT_CONFIRM_AFTER);
        let first = self.look(min_age, true).await?;
        if first.findings.is_empty() {
            return Ok(self.remove(&first, Vec::new(), req.dry_run).await);
        }
        tokio::time::sleep(pause).await;
        let second = self.look(min_age, true).await?;
        let confirmed = second.confirmed_by(&first);
        Ok(self.remove(&second, confirmed, req.dry_run).await)
    }

    /// `pools`: whether pool ports are judged too (only for `kuryr gc`).
    async fn look(&self, min_age: Duration, pools: bool) -> Result<Survey, DriverError> {
        let (view, note) = match &self.docker_socket {
            None => (
                None,
                Some("[DEFAULT] docker_socket is empty: Docker's view was not read".to_owned()),
            ),
            Some(socket) => match docker_api::view(socket).await {
                Ok(view) => (Some(view), None),
                Err(e) => (None, Some(e)),
            },
        };
        let mut survey = self.driver.survey(view.as_ref(), min_age, pools).await?;
        if let Some(note) = note {
            survey.notes.insert(0, note);
        }
        Ok(survey)
    }

    async fn remove(&self, survey: &Survey, confirmed: Vec<Finding>, dry_run: bool) -> GcReport {
        let mut report = GcReport {
            dry_run,
            ports: survey.ports,
            networks: survey.networks,
            subnetpools: survey.subnetpools,
            floating_ips: survey.floating_ips,
            interfaces: survey.interfaces,
            notes: survey.notes.clone(),
            ..GcReport::default()
        };
        let mut removed_kinds = Vec::new();
        for finding in confirmed {
            report.orphans.push(Orphan {
                kind: kind_name(finding.kind),
                resource: finding.resource.clone(),
                why: finding.why.clone(),
            });
            if dry_run {
                continue;
            }
            match self.driver.remove_orphan(&finding).await {
                Ok(true) => {
                    report.removed += 1;
                    removed_kinds.push(kind_name(finding.kind));
                }
                Ok(false) => {}
                Err(e) => report
                    .errors
                    .push(format!("{}: {}", finding.resource, e.report())),
            }
        }
        if let Some(metrics) = &self.metrics {
            metrics
                .exporter
                .reconciled(&removed_kinds, report.errors.len());
        }
        report
    }
}

/// An orphan's kind as reports and metrics name it (`endpoint_port`).
fn kind_name(kind: OrphanKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}
