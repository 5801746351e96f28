//! `kuryr published`: where each container is reached from outside, from Neutron (the
//! floating IPs and port forwardings kuryr made) and Docker (container and network names).

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;

use kuryr::config::{Config, LoadOptions};
use kuryr::docker_api::{self, Attachment};
use kuryr::openstack::neutron_client;
use kuryr_driver::mapping::{
    endpoint_of_fip_description, endpoint_of_forwarding, is_published_fip_description, USER_FIP_TAG,
};
use kuryr_openstack::error::chain;
use kuryr_openstack::neutron::Filters;
use serde::Serialize;

use crate::cli::PublishedArgs;

/// One way in to a container.
#[derive(Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    container: String,
    network: String,
    /// `address:port/protocol`, or the address of the container's own floating IP.
    published: String,
    /// `address:port` in the container, or its address.
    to: String,
    endpoint: String,
}

pub async fn run(load: &LoadOptions, args: &PublishedArgs) -> ExitCode {
    match entries(load).await {
        Ok(mut entries) => {
            if !args.containers.is_empty() {
                entries.retain(|e| args.containers.contains(&e.container));
            }
            entries.sort();
            print(&entries, args.json);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kuryr published: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn entries(load: &LoadOptions) -> Result<Vec<Entry>, String> {
    let config = Config::load(load).map_err(|e| chain(&e))?;
    let neutron = neutron_client(&config.openstack).map_err(|e| chain(&e))?;
    // Names are a convenience: without Docker, endpoints are shown by id.
    let names: HashMap<String, Attachment> = match &config.default.docker_socket {
        Some(socket) => docker_api::endpoints(socket).await.unwrap_or_else(|e| {
            eprintln!("kuryr published: containers are shown by endpoint id: {e}");
            HashMap::new()
        }),
        None => HashMap::new(),
    };
    let fips = neutron
        .floating_ips()
        .list(&Filters::new())
        .await
        .map_err(|e| format!("listing floating IPs: {}", chain(&e)))?;
    let mut entries = Vec::new();
    let mut entry = |endpoint: &str, published: String, to: String| {
        let attached = names.get(endpoint);
        entries.push(Entry {
            container: attached.map_or_else(|| "?".into(), |a| a.container.clone()),
            network: attached.map_or_else(|| "?".into(), |a| a.network.clone()),
            published,
            to,
            endpoint: endpoint.to_owned(),
        });
    };
    for fip in &fips {
        if let Some((endpoint, _)) = endpoint_of_fip_description(&fip.description) {
            let to = fip.fixed_ip_address.clone().unwrap_or_else(|| "-".into());
            entry(endpoint, fip.floating_ip_address.clone(), to);
            continue;
        }
        let forwards = is_published_fip_description(&fip.description)
            || fip.tags.iter().any(|t| t == USER_FIP_TAG);
        if !forwards {
            continue;
        }
        let api = neutron.port_forwardings(&fip.id).map_err(|e| chain(&e))?;
        let pfs = api.list(&Filters::new()).await.map_err(|e| {
            format!(
                "listing the port forwardings of {}: {}",
                fip.floating_ip_address,
                chain(&e)
            )
        })?;
        for pf in pfs {
            let Some(endpoint) = endpoint_of_forwarding(&pf.description) else {
                continue;
            };
            entry(
                endpoint,
                format!(
                    "{}:{}/{}",
                    fip.floating_ip_address,
                    pf.external_port.unwrap_or_default(),
                    pf.protocol
                ),
                format!(
                    "{}:{}",
                    pf.internal_ip_address,
                    pf.internal_port.unwrap_or_default()
                ),
            );
        }
    }
    Ok(entries)
}

fn print(entries: &[Entry], json: bool) {
    let mut out = std::io::stdout().lock();
    if json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(entries).unwrap_or_default()
        );
        return;
    }
    let _ = writeln!(
        out,
        "{:<24} {:<20} {:<26} TO",
        "CONTAINER", "NETWORK", "PUBLISHED"
    );
    for e in entries {
        let _ = writeln!(
            out,
            "{:<24} {:<20} {:<26} {}",
            e.container, e.network, e.published, e.to
        );
    }
}
