//! `kuryr stats`: the running daemon's per-call timings and Neutron requests.

use std::process::ExitCode;

use kuryr::admin::client::call;
use kuryr::config::LoadOptions;
use serde_json::Value;

use crate::cli::StatsArgs;

pub async fn run(load: &LoadOptions, args: &StatsArgs) -> ExitCode {
    match stats(load, args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("kuryr stats: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn stats(load: &LoadOptions, args: &StatsArgs) -> Result<(), String> {
    let socket = super::admin_socket(load, &args.admin);
    let report: Value = call::<(), _>(&socket, "GET", "/v1/stats", None).await?;
    if args.json {
        super::pool::print_json(&report)?;
    } else {
        print_table(&report);
    }
    if args.reset {
        let _: Value = call::<(), _>(&socket, "POST", "/v1/stats/reset", None).await?;
    }
    Ok(())
}

fn print_table(report: &Value) {
    println!(
        "{:<44} {:>7} {:>8} {:>10} {:>10} {:>10} {:>10} {:>14} {:>16}",
        "call",
        "count",
        "neutron",
        "total p50",
        "total p99",
        "own p50",
        "own p99",
        "cpu wait p99",
        "own-wait p99"
    );
    let us = |v: &Value, k: &str, p: &str| v[k][p].as_u64().unwrap_or(0);
    for c in report["calls"].as_array().into_iter().flatten() {
        println!(
            "{:<44} {:>7} {:>8} {:>8}us {:>8}us {:>8}us {:>8}us {:>12}us {:>14}us",
            c["call"].as_str().unwrap_or("?"),
            c["count"].as_u64().unwrap_or(0),
            c["neutron_requests"].as_u64().unwrap_or(0),
            us(c, "total_us", "p50"),
            us(c, "total_us", "p99"),
            us(c, "own_us", "p50"),
            us(c, "own_us", "p99"),
            us(c, "cpu_wait_us", "p99"),
            us(c, "own_less_cpu_wait_us", "p99"),
        );
    }
    println!(
        "Neutron requests: {} on Docker's path, {} in the background; RSS {} KiB (peak {} KiB)",
        report["neutron_requests"]["on_path"].as_u64().unwrap_or(0),
        report["neutron_requests"]["background"]
            .as_u64()
            .unwrap_or(0),
        report["rss_kib"].as_u64().unwrap_or(0),
        report["peak_rss_kib"].as_u64().unwrap_or(0),
    );
}
