//! `kuryr gc [--dry-run]`: the running daemon's reconciler, now, over its admin socket.

use std::process::ExitCode;

use kuryr::admin::client::call;
use kuryr::config::LoadOptions;
use kuryr::reconciler::{GcReport, GcRequest};

use crate::cli::GcArgs;

pub async fn run(load: &LoadOptions, args: &GcArgs) -> ExitCode {
    match gc(load, args).await {
        Ok(report) if report.errors.is_empty() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("kuryr gc: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn gc(load: &LoadOptions, args: &GcArgs) -> Result<GcReport, String> {
    let socket = super::admin_socket(load, &args.admin);
    let req = GcRequest {
        dry_run: args.dry_run,
        min_age: args.min_age,
        confirm_after: Some(args.confirm_after),
        forget_control_plane: args.forget_control_plane.clone(),
    };
    let report: GcReport = call(&socket, "POST", "/v1/gc", Some(&req)).await?;
    if args.json {
        super::pool::print_json(&report)?;
        return Ok(report);
    }
    for note in &report.notes {
        println!("note: {note}");
    }
    let verb = if report.dry_run {
        "would remove"
    } else {
        "removing"
    };
    for orphan in &report.orphans {
        println!(
            "{verb} {} {}: {}",
            orphan.kind.replace('_', " "),
            orphan.resource,
            orphan.why
        );
    }
    for error in &report.errors {
        println!("failed: {error}");
    }
    if let (Some(id), true) = (&args.forget_control_plane, report.orphans.is_empty()) {
        println!("nothing to do: control plane {id} maps nothing in Neutron");
    } else if report.orphans.is_empty() {
        println!(
            "nothing to do: {} kuryr ports, {} networks, {} subnetpools, {} floating IPs and {} plugged interfaces of this host checked",
            report.ports, report.networks, report.subnetpools, report.floating_ips, report.interfaces
        );
    } else if !report.dry_run {
        println!(
            "{} of {} orphans removed",
            report.removed,
            report.orphans.len()
        );
    }
    Ok(report)
}
