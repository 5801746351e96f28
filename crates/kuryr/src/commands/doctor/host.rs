//! `kuryr doctor`'s checks of this host: Open vSwitch and its integration bridge, this
//! host's Neutron agent (alive, and of a kind whose ports kuryr binds), the plugin socket,
//! and whether Docker has loaded the plugin. Each failure says what to start or set.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kuryr::config::{CapabilityScope, Config};
use kuryr::docker_api;
use kuryr::unix_http;
use kuryr_binding::ovsdb::{rows, Ovsdb};
use kuryr_driver::PortMode;
use kuryr_openstack::error::chain;
use kuryr_openstack::neutron::{Filters, Neutron};
use serde_json::json;

use super::Report;

/// Where Neutron's Open vSwitch agents and OVN plug ports, and kuryr with them.
const INTEGRATION_BRIDGE: &str = "br-int";

/// What the local checks learnt, for the agent check.
#[derive(Debug, Default)]
pub struct Local {
    /// The Open vSwitch bridges, when ovsdb-server answered.
    bridges: Option<Vec<String>>,
}

/// The agents whose ports kuryr binds on this host, by `agent_type`, and the vif_type
/// their ports get.
const L2_AGENTS: &[(&str, &str)] = &[
    ("Open vSwitch agent", "ovs"),
    ("OVN Controller agent", "ovs"),
    ("OVN Controller Gateway agent", "ovs"),
    ("Linux bridge agent", "bridge"),
];

/// The checks that need no Neutron: Open vSwitch, the plugin socket, Docker.
pub async fn check_local(
    report: &mut Report,
    config: &Config,
    mode: Option<&PortMode>,
    socket: &Path,
    plugin: &str,
) -> Local {
    let mut local = Local::default();
    match mode {
        Some(PortMode::Nested(_)) => report.skip(
            "Open vSwitch",
            "containers in a VM reach Neutron through the VM's interface",
        ),
        _ => local.bridges = check_ovs(report, &config.binding.ovsdb_socket).await,
    }
    check_plugin_socket(report, socket).await;
    check_docker(report, config, plugin).await;
    let ipvs = Path::new(IPVS_TABLE).exists();
    match swarm_check(config.default.capability_scope, ipvs) {
        (Level::Info, line) => report.info("Swarm", line),
        (Level::Warn, line) => report.warn("Swarm", line),
    }
    local
}

/// Where a kernel with IPVS lists its virtual services.
const IPVS_TABLE: &str = "/proc/net/ip_vs";

#[derive(Debug, PartialEq, Eq)]
enum Level {
    Info,
    Warn,
}

/// What Swarm can do with this plugin here: global scope is needed for swarm-scoped
/// networks, and Swarm's virtual IPs and routing mesh need the kernel's IPVS.
fn swarm_check(scope: CapabilityScope, ipvs: bool) -> (Level, String) {
    match (scope, ipvs) {
        (CapabilityScope::Local, _) => (
            Level::Info,
            "capability_scope = local: networks are this host's; Swarm's swarm-scoped networks \
             need capability_scope = global and the managed plugin"
                .to_owned(),
        ),
        (CapabilityScope::Global, true) => (
            Level::Info,
            "capability_scope = global, and the kernel has IPVS: swarm services in VIP or \
             dnsrr endpoint mode"
                .to_owned(),
        ),
        (CapabilityScope::Global, false) => (
            Level::Warn,
            format!(
                "this kernel has no IPVS ({IPVS_TABLE} is missing): swarm services in VIP \
                 endpoint mode (the default) and published ports (the routing mesh) fail on \
                 this node; create services with --endpoint-mode dnsrr, or load ip_vs"
            ),
        ),
    }
}

async fn check_ovs(report: &mut Report, path: &Path) -> Option<Vec<String>> {
    let ovsdb = Ovsdb::new(path).with_timeout(Duration::from_secs(3));
    let select = json!({"op": "select", "table": "Bridge", "where": [], "columns": ["name"]});
    match ovsdb.transact(&[select]).await {
        Ok(results) => {
            let mut bridges: Vec<String> = results
                .first()
                .map(rows)
                .unwrap_or_default()
                .iter()
                .filter_map(|r| r["name"].as_str().map(str::to_owned))
                .collect();
            bridges.sort();
            report.pass(
                "Open vSwitch",
                format!(
                    "ovsdb-server answers at {}; bridges: {}",
                    path.display(),
                    if bridges.is_empty() {
                        "none".to_owned()
                    } else {
                        bridges.join(", ")
                    }
                ),
            );
            Some(bridges)
        }
        Err(e) => {
            report.fail(
                "Open vSwitch",
                format!("ovsdb-server at {}: {e}", path.display()),
                "start Open vSwitch (ovsdb-server and ovs-vswitchd), or point [binding] \
                 ovsdb_connection at its socket",
            );
            None
        }
    }
}

async fn check_plugin_socket(report: &mut Report, socket: &Path) {
    let answer = unix_http::request(socket, "POST", "/Plugin.Activate", b"{}").await;
    match answer {
        Ok((200, body)) if String::from_utf8_lossy(&body).contains("NetworkDriver") => {
            report.pass(
                "plugin socket",
                format!("kuryr serve answers at {}", socket.display()),
            );
        }
        Ok((status, body)) => report.fail(
            "plugin socket",
            format!(
                "{} answered {status} to Plugin.Activate: {}",
                socket.display(),
                String::from_utf8_lossy(&body).trim()
            ),
            "something else holds the plugin's socket: stop it, then start kuryr serve",
        ),
        // Before the daemon's first start (doctor as a pre-flight check) this is expected.
        Err(e) => report.warn(
            "plugin socket",
            format!(
                "nothing answers at {} ({e}): Docker cannot use kuryr until kuryr serve runs \
                 (systemctl start kuryr); --plugin-name or --socket name another daemon's",
                socket.display()
            ),
        ),
    }
}

async fn check_docker(report: &mut Report, config: &Config, plugin: &str) {
    let Some(docker) = &config.default.docker_socket else {
        report.skip("Docker", "[DEFAULT] docker_socket is empty");
        return;
    };
    match docker_api::network_plugins(docker).await {
        Ok((loaded, managed)) => {
            let managed_here = managed
                .iter()
                .find(|(name, _)| name == plugin || name.starts_with(&format!("{plugin}:")));
            match managed_here {
                Some((name, true)) => {
                    report.pass("Docker", format!("the managed plugin {name} is enabled"))
                }
                Some((name, false)) => report.fail(
                    "Docker",
                    format!("the managed plugin {name} is disabled"),
                    format!("docker plugin enable {name}"),
                ),
                None if loaded.iter().any(|p| p == plugin) => report.pass(
                    "Docker",
                    format!("Docker has loaded the network plugin {plugin}"),
                ),
                None => report.warn(
                    "Docker",
                    format!(
                        "Docker has not loaded the plugin {plugin} yet: it does when a network \
                         first uses it (docker network create -d {plugin} --ipam-driver \
                         {plugin} ...)"
                    ),
                ),
            }
        }
        Err(e) => report.fail(
            "Docker",
            e,
            "start Docker, or point [DEFAULT] docker_socket at its API socket",
        ),
    }
}

/// This host's Neutron agents: an L2 agent must report from this host, alive, and one that
/// plugs ports into Open vSwitch needs its integration bridge.
pub async fn check_agent(
    report: &mut Report,
    neutron: &Neutron,
    host: &str,
    mode: Option<&PortMode>,
    local: &Local,
) {
    if matches!(mode, Some(PortMode::Nested(_))) {
        report.skip(
            "Neutron agent",
            "containers in a VM: Neutron binds their ports to the hypervisor",
        );
        return;
    }
    let agents = match neutron.agents(&Filters::new().eq("host", host)).await {
        Ok(agents) => agents,
        Err(e) if e.status() == Some(403) => {
            report.warn(
                "Neutron agent",
                "Neutron lets only admins list agents: whether an agent serves this host is \
                 not known",
            );
            return;
        }
        Err(e) => {
            report.fail("Neutron agent", chain(&e), e.hint());
            return;
        }
    };
    let l2: Vec<_> = agents
        .iter()
        .filter_map(|a| {
            L2_AGENTS
                .iter()
                .find(|(kind, _)| *kind == a.agent_type)
                .map(|(_, vif)| (a, *vif))
        })
        .collect();
    let Some((agent, vif_type)) = l2.iter().find(|(a, _)| a.alive).or(l2.first()) else {
        let others: Vec<&str> = agents.iter().map(|a| a.agent_type.as_str()).collect();
        report.fail(
            "Neutron agent",
            format!(
                "no Open vSwitch, OVN or Linux bridge agent reports from host {host}{}: ports \
                 bound here end binding_failed",
                if others.is_empty() {
                    String::new()
                } else {
                    format!(" (only {})", others.join(", "))
                }
            ),
            format!(
                "start this host's L2 agent (neutron-openvswitch-agent or ovn-controller) \
                 with host = {host}, the name kuryr binds ports to"
            ),
        );
        return;
    };
    if !agent.alive {
        report.fail(
            "Neutron agent",
            format!(
                "the {} of host {host} ({}) has not reported in time",
                agent.agent_type, agent.binary
            ),
            format!("start or restart {} on this host", agent.binary),
        );
        return;
    }
    report.pass(
        "Neutron agent",
        format!(
            "{} of host {host} is alive: ports bound here get vif_type {vif_type}",
            agent.agent_type
        ),
    );
    if *vif_type != "ovs" {
        return;
    }
    match &local.bridges {
        Some(bridges) if bridges.iter().any(|b| b == INTEGRATION_BRIDGE) => report.pass(
            "integration bridge",
            format!("{INTEGRATION_BRIDGE} is in Open vSwitch"),
        ),
        Some(_) => report.fail(
            "integration bridge",
            format!("Open vSwitch has no {INTEGRATION_BRIDGE}, where the agent wires ports"),
            format!("the agent makes {INTEGRATION_BRIDGE} when it starts: restart it"),
        ),
        None => report.skip("integration bridge", "Open vSwitch did not answer"),
    }
}

/// Where a daemon serving `plugin` listens unless `--socket` says otherwise.
pub fn default_socket(plugin: &str) -> PathBuf {
    PathBuf::from(format!("/run/docker/plugins/{plugin}.sock"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swarm_without_ipvs_warns_and_names_dnsrr() {
        let (level, line) = swarm_check(CapabilityScope::Global, false);
        assert_eq!(level, Level::Warn);
        assert!(line.contains("--endpoint-mode dnsrr"), "{line}");
        assert_eq!(swarm_check(CapabilityScope::Global, true).0, Level::Info);
        let (level, line) = swarm_check(CapabilityScope::Local, false);
        assert_eq!(level, Level::Info);
        assert!(line.contains("capability_scope = global"), "{line}");
    }
}
