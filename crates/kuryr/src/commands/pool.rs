//! `kuryr pool list|populate|free`: the running daemon's port pools, over its admin socket.

use std::process::ExitCode;

use kuryr::admin::client::call;
use kuryr::admin::{FreeRequest, Freed, PopulateRequest};
use kuryr::config::LoadOptions;
use kuryr_driver::pool_admin::{PoolReport, Populated};

use crate::cli::PoolCommand;

pub async fn run(load: &LoadOptions, cmd: PoolCommand) -> ExitCode {
    match pool(load, cmd).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("kuryr pool: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn pool(load: &LoadOptions, cmd: PoolCommand) -> Result<(), String> {
    match cmd {
        PoolCommand::List { admin, json } => {
            let socket = super::admin_socket(load, &admin);
            let report: PoolReport = call::<(), _>(&socket, "GET", "/v1/pools", None).await?;
            if json {
                print_json(&report)
            } else {
                print_pools(&report);
                Ok(())
            }
        }
        PoolCommand::Populate {
            admin,
            network,
            subnet,
            count,
        } => {
            let socket = super::admin_socket(load, &admin);
            let req = PopulateRequest {
                network,
                subnet,
                count,
            };
            let done: Vec<Populated> =
                call(&socket, "POST", "/v1/pools/populate", Some(&req)).await?;
            for p in done {
                println!(
                    "network {} subnet {}: {} ports added, {} free",
                    p.network_id, p.subnet_id, p.added, p.free
                );
            }
            Ok(())
        }
        PoolCommand::Free { admin, network } => {
            let socket = super::admin_socket(load, &admin);
            let req = FreeRequest { network };
            let freed: Freed = call(&socket, "POST", "/v1/pools/free", Some(&req)).await?;
            println!("{} free pool ports deleted", freed.deleted);
            Ok(())
        }
    }
}

fn print_pools(report: &PoolReport) {
    if !report.enabled {
        println!("port pools are off ([vif_pool] enabled = false)");
        return;
    }
    println!(
        "{:<36}  {:<36}  {:>5}  {:>5}  {:>6}  {:<7}  security groups",
        "network", "subnet", "free", "held", "target", "filling"
    );
    for p in &report.pools {
        println!(
            "{:<36}  {:<36}  {:>5}  {:>5}  {:>6}  {:<7}  {}",
            p.key.network_id,
            p.key.subnet_id,
            p.free,
            p.held,
            p.target,
            if p.filling { "yes" } else { "no" },
            p.key.security_groups.join(",")
        );
    }
    let c = &report.counters;
    println!(
        "hits {} misses {} created {} recycled {} deleted {} recovered {}",
        c.hits, c.misses, c.created, c.recycled, c.deleted, c.recovered
    );
}

pub fn print_json<T: serde::Serialize>(value: &T) -> Result<(), String> {
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    println!("{text}");
    Ok(())
}
