//! Plug and unplug N interfaces (default 100) into an OVS bridge, through kuryr's OVSDB client
//! and by forking `ovs-vsctl` as upstream's `ovs` binding script does, and print the times.
//!
//! ```text
//! cargo run --release -p kuryr-binding --example ovs_plug_timing [N] [ROUNDS]
//! ```
//!
//! Needs root and a running Open vSwitch. It makes its own bridge `brkt<pid>t` on the
//! userspace datapath and N veth pairs, and removes them at the end. Both ways wait for
//! ovs-vswitchd to attach each interface (ovs-vsctl does by default); upstream's unbind is two
//! `ovs-vsctl` runs (find the interface by iface-id, then del-port), kuryr's one lookup and one
//! transaction on its open connection.

use std::error::Error;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kuryr_binding::ovsdb::DEFAULT_SOCKET;
use kuryr_binding::{veth_names, Netlink, OvsPort, Ovsdb, VethNames, VethSpec};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

const MAC: [u8; 6] = [0xfa, 0x16, 0x3e, 0x00, 0x00, 0x01];

/// The bridge and veth pairs, removed on drop whatever happened.
struct Fixture {
    bridge: String,
    ports: Vec<(String, VethNames)>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = Command::new("ovs-vsctl")
            .args(["--if-exists", "del-br", &self.bridge])
            .status();
        for (_, names) in &self.ports {
            let _ = Command::new("ip")
                .args(["link", "del", &names.host])
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn vsctl(args: &[&str]) -> Result<String> {
    let out = Command::new("ovs-vsctl").args(args).output()?;
    if !out.status.success() {
        return Err(format!(
            "ovs-vsctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Upstream's bind: one `ovs-vsctl` with `--may-exist add-port` and the external_ids.
fn vsctl_plug(bridge: &str, port_id: &str, tap: &str) -> Result<()> {
    vsctl(&[
        "--",
        "--may-exist",
        "add-port",
        bridge,
        tap,
        "--",
        "set",
        "Interface",
        tap,
        "external_ids:attached-mac=fa:16:3e:00:00:01",
        &format!("external_ids:iface-id={port_id}"),
        &format!("external_ids:vm-uuid=ep-{port_id}"),
        "external_ids:iface-status=active",
        "external_ids:owner=kuryr",
    ])?;
    Ok(())
}

/// Upstream's unbind: find the interface by iface-id and owner, then del-port it.
fn vsctl_unplug(port_id: &str) -> Result<()> {
    let name = vsctl(&[
        "--columns=name",
        "--bare",
        "find",
        "Interface",
        &format!("external_ids:iface-id={port_id}"),
        "external_ids:owner=kuryr",
    ])?;
    if !name.is_empty() {
        vsctl(&["del-port", &name])?;
    }
    Ok(())
}

#[derive(Clone, Copy)]
struct Times {
    plug: Duration,
    unplug: Duration,
}

async fn client_sequential(db: &Ovsdb, f: &Fixture) -> Result<Times> {
    let start = Instant::now();
    for (port_id, names) in &f.ports {
        db.add_port(&spec(&f.bridge, port_id, names)).await?;
    }
    let plug = start.elapsed();
    let start = Instant::now();
    for (port_id, _) in &f.ports {
        db.del_ports_of(port_id).await?;
    }
    Ok(Times {
        plug,
        unplug: start.elapsed(),
    })
}

async fn client_concurrent(db: &Ovsdb, f: &Fixture) -> Result<Times> {
    let specs: Vec<OvsPort<'_>> = f
        .ports
        .iter()
        .map(|(port_id, names)| spec(&f.bridge, port_id, names))
        .collect();
    let start = Instant::now();
    for result in futures::future::join_all(specs.iter().map(|s| db.add_port(s))).await {
        result?;
    }
    let plug = start.elapsed();
    let start = Instant::now();
    let unplugs = f.ports.iter().map(|(port_id, _)| db.del_ports_of(port_id));
    for result in futures::future::join_all(unplugs).await {
        result?;
    }
    Ok(Times {
        plug,
        unplug: start.elapsed(),
    })
}

fn forking_vsctl(f: &Fixture) -> Result<Times> {
    let start = Instant::now();
    for (port_id, names) in &f.ports {
        vsctl_plug(&f.bridge, port_id, &names.host)?;
    }
    let plug = start.elapsed();
    let start = Instant::now();
    for (port_id, _) in &f.ports {
        vsctl_unplug(port_id)?;
    }
    Ok(Times {
        plug,
        unplug: start.elapsed(),
    })
}

fn spec<'a>(bridge: &'a str, port_id: &'a str, names: &'a VethNames) -> OvsPort<'a> {
    OvsPort {
        bridge,
        name: &names.host,
        iface_id: port_id,
        mac: MAC,
        vm_uuid: port_id,
    }
}

fn check_empty(f: &Fixture) -> Result<()> {
    let ports = vsctl(&["list-ports", &f.bridge])?;
    if ports.is_empty() {
        Ok(())
    } else {
        Err(format!("ports left on {}: {ports}", f.bridge).into())
    }
}

/// The median of each column over the rounds.
fn median(mut rounds: Vec<Times>) -> Times {
    let mid = rounds.len() / 2;
    rounds.sort_by_key(|t| t.plug);
    let plug = rounds[mid].plug;
    rounds.sort_by_key(|t| t.unplug);
    Times {
        plug,
        unplug: rounds[mid].unplug,
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(Ok(100), |a| a.parse())?;
    let rounds: usize = args.next().map_or(Ok(3), |a| a.parse())?;
    if n == 0 || n > 4000 || rounds == 0 {
        return Err("N must be 1..=4000 and ROUNDS at least 1".into());
    }

    let pid = std::process::id();
    let mut fixture = Fixture {
        bridge: format!("brkt{pid}t"),
        ports: Vec::new(),
    };
    vsctl(&[
        "add-br",
        &fixture.bridge,
        "--",
        "set",
        "Bridge",
        &fixture.bridge,
        "datapath_type=netdev",
    ])?;
    let nl = Netlink::connect().await?;
    for i in 0..n {
        let port_id = format!("{pid:07x}{i:04x}-0000-4000-8000-000000000000");
        let names = veth_names(&port_id);
        nl.ensure_veth(&VethSpec {
            names: &names,
            mac: MAC,
            mtu: 1500,
        })
        .await?;
        fixture.ports.push((port_id, names));
    }

    let db = Ovsdb::new(DEFAULT_SOCKET);
    db.echo().await?;
    let mut results: Vec<(&str, Vec<Times>)> = vec![
        ("kuryr OVSDB client, one at a time", Vec::new()),
        ("kuryr OVSDB client, all concurrently", Vec::new()),
        ("ovs-vsctl forks (upstream script)", Vec::new()),
    ];
    for _ in 0..rounds {
        results[0].1.push(client_sequential(&db, &fixture).await?);
        check_empty(&fixture)?;
        results[1].1.push(client_concurrent(&db, &fixture).await?);
        check_empty(&fixture)?;
        results[2].1.push(forking_vsctl(&fixture)?);
        check_empty(&fixture)?;
    }

    println!("{n} interfaces, median of {rounds} rounds, bridge on the userspace datapath");
    println!();
    println!(
        "| {:<38} | {:>11} | {:>10} | {:>11} | {:>10} |",
        "method", "plug total", "per plug", "unplug tot.", "per unplug"
    );
    println!(
        "|{:-<40}|{:->13}|{:->12}|{:->13}|{:->12}|",
        "", "", "", "", ""
    );
    let count = u32::try_from(n)?;
    for (name, rounds) in results {
        let t = median(rounds);
        println!(
            "| {:<38} | {:>8.0} ms | {:>7.2} ms | {:>8.0} ms | {:>7.2} ms |",
            name,
            t.plug.as_secs_f64() * 1e3,
            (t.plug / count).as_secs_f64() * 1e3,
            t.unplug.as_secs_f64() * 1e3,
            (t.unplug / count).as_secs_f64() * 1e3,
        );
    }
    Ok(())
}
