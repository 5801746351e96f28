//! `kuryr doctor`: one line per check, `PASS`, `WARN`, `FAIL` or `SKIP`, each failure with
//! what to fix; exits non-zero when anything failed.

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use kuryr::config::{Config, LoadOptions};
use kuryr::driver::port_mode;
use kuryr::openstack::neutron_client;
use kuryr_driver::control_plane::Source;
use kuryr_driver::{NestedKind, PortMode};
use kuryr_openstack::error::chain;
use kuryr_openstack::neutron::Extension;
use kuryr_openstack::AuthMethod;

use crate::cli::DoctorArgs;

mod host;

/// Extensions kuryr cannot work without, with what each is for.
const REQUIRED: &[(&str, &str)] = &[
    ("subnet_allocation", "subnetpools back Docker's IPAM pools"),
    (
        "standard-attr-tag",
        "tags hold the mapping between Docker and Neutron",
    ),
];

/// Extensions that enable features, with what each enables.
const OPTIONAL: &[(&str, &str)] = &[
    ("trunk", "nested containers on VLAN subports"),
    (
        "floating-ip-port-forwarding",
        "published ports through floating IPs",
    ),
    (
        "tag-creation",
        "tags set in the same request that creates a resource",
    ),
    ("revision-if-match", "conflict-free updates of shared ports"),
    ("binding", "host binding of container ports"),
    ("allowed-address-pairs", "nested containers with macvlan"),
    ("port-security", "ports without security groups"),
    ("network-ip-availability", "address usage reports"),
];

#[derive(Default)]
struct Report {
    failed: usize,
}

impl Report {
    /// Print one line. A closed standard output (`kuryr doctor | head`) is not an error
    /// worth a panic: the exit code still tells.
    fn print(&self, line: &str) {
        let _ = writeln!(std::io::stdout().lock(), "{line}");
    }

    fn line(&mut self, status: &str, check: &str, detail: impl AsRef<str>) {
        self.print(&format!("{status:<4} {check}: {}", detail.as_ref()));
    }

    fn pass(&mut self, check: &str, detail: impl AsRef<str>) {
        self.line("PASS", check, detail);
    }

    fn warn(&mut self, check: &str, detail: impl AsRef<str>) {
        self.line("WARN", check, detail);
    }

    fn info(&mut self, check: &str, detail: impl AsRef<str>) {
        self.line("INFO", check, detail);
    }

    fn fail(&mut self, check: &str, detail: impl AsRef<str>, fix: impl AsRef<str>) {
        self.failed += 1;
        self.line("FAIL", check, detail);
        self.print(&format!("     fix: {}", fix.as_ref()));
    }

    fn skip(&mut self, check: &str, because: &str) {
        self.line("SKIP", check, format!("not checked: {because}"));
    }

    fn finish(self) -> ExitCode {
        if self.failed == 0 {
            self.print("kuryr doctor: all checks passed");
            ExitCode::SUCCESS
        } else {
            self.print(&format!("kuryr doctor: {} check(s) failed", self.failed));
            ExitCode::FAILURE
        }
    }
}

pub async fn run(load: &LoadOptions, args: &DoctorArgs) -> ExitCode {
    let mut report = Report::default();

    let config = match Config::load(load) {
        Ok(config) => config,
        Err(e) => {
            report.fail(
                "configuration",
                chain(&e),
                "correct the value or file named above (see the README's Configuration section)",
            );
            return report.finish();
        }
    };
    let files: Vec<String> = config
        .files
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    let mut sources = if files.is_empty() {
        "no kuryr.conf (defaults and environment only)".to_string()
    } else {
        format!("read {}", files.join(", "))
    };
    if let Some((path, cloud)) = &config.cloud {
        sources.push_str(&format!("; cloud {cloud} from {}", path.display()));
    }
    report.pass("configuration", sources);
    for warning in &config.warnings {
        report.warn("configuration", warning);
    }
    let mode = match port_mode(
        &config.default.default_port_driver,
        &config.binding.default_driver,
        &config.binding.link_iface,
    ) {
        Ok(mode) => {
            report.pass("port driver", describe(&mode));
            Some(mode)
        }
        Err(e) => {
            report.fail(
                "port driver",
                e,
                "see the README's \"Using kuryr with Docker\" section for the port drivers",
            );
            None
        }
    };
    check_control_plane(&mut report, &config).await;
    let socket = args
        .socket
        .clone()
        .unwrap_or_else(|| host::default_socket(&args.plugin_name));
    let local = host::check_local(
        &mut report,
        &config,
        mode.as_ref(),
        &socket,
        &args.plugin_name,
    )
    .await;
    report.pass("credentials", &config.openstack.summary);
    if !config.openstack.origins.is_empty() {
        report.print(&format!(
            "     from: {}",
            config.openstack.origins.join(", ")
        ));
    }

    let neutron = match neutron_client(&config.openstack) {
        Ok(n) => n,
        Err(e) => {
            report.fail("client", chain(&e), e.hint());
            return report.finish();
        }
    };
    let session = neutron.session().clone();

    let keystone_ok = match session.auth() {
        AuthMethod::NoAuth { .. } => {
            report.info("Keystone auth", "not used (auth_type = none)");
            true
        }
        AuthMethod::Keystone(_) => {
            let started = Instant::now();
            match session.token().await {
                Ok(token) => {
                    let left = (token.expires_at - chrono::Utc::now()).num_seconds();
                    let project = token
                        .project
                        .as_ref()
                        .map(|p| format!(" in project {}", p.name))
                        .unwrap_or_default();
                    report.pass(
                        "Keystone auth",
                        format!(
                            "token for {}{project}, valid {left} s more ({} ms)",
                            token.user.name,
                            started.elapsed().as_millis()
                        ),
                    );
                    if token.project.is_none() {
                        report.warn(
                            "Keystone scope",
                            "the token is not scoped to a project: Neutron creates ports in the \
                             token's project, so set [neutron] project_name (with \
                             project_domain_name) or project_id unless this is intended",
                        );
                    } else if !token.roles.iter().any(|r| r == "admin") {
                        report.warn(
                            "Keystone roles",
                            format!(
                                "roles {:?} do not include admin; Neutron's default policy lets only \
                                 admins set binding:host_id on ports",
                                token.roles
                            ),
                        );
                    }
                    true
                }
                Err(e) => {
                    report.fail("Keystone auth", chain(&e), e.hint());
                    false
                }
            }
        }
    };
    if !keystone_ok {
        report.skip("Neutron endpoint", "needs a Keystone token");
        report.skip("Neutron API", "needs a Keystone token");
        return report.finish();
    }

    let filter = neutron.endpoint_filter().clone();
    match session.endpoint(&filter).await {
        Ok(url) => report.pass(
            "Neutron endpoint",
            format!(
                "{url} ({} interface{})",
                filter.interface,
                filter
                    .region
                    .as_deref()
                    .map(|r| format!(", region {r}"))
                    .unwrap_or_default()
            ),
        ),
        Err(e) => {
            report.fail("Neutron endpoint", chain(&e), e.hint());
            report.skip("Neutron API", "needs an endpoint");
            return report.finish();
        }
    }

    let started = Instant::now();
    let extensions = match neutron.extensions().await {
        Ok(ext) => {
            report.pass(
                "Neutron API",
                format!(
                    "answered with {} extensions in {} ms",
                    ext.len(),
                    started.elapsed().as_millis()
                ),
            );
            ext
        }
        Err(e) => {
            report.fail("Neutron API", chain(&e), e.hint());
            return report.finish();
        }
    };
    check_extensions(&mut report, &extensions);
    let host = kuryr::driver::host_id().unwrap_or_default();
    host::check_agent(&mut report, &neutron, &host, mode.as_ref(), &local).await;
    report.finish()
}

/// Which Docker control plane this host's kuryr maps networks for, and where that id comes
/// from: two engines sharing a Neutron network must show different ones.
async fn check_control_plane(report: &mut Report, config: &Config) {
    let host = kuryr::driver::host_id().unwrap_or_default();
    match kuryr::driver::control_plane_source(config, &host) {
        Source::Configured(id) => {
            report.pass(
                "control plane",
                format!("{id} ([DEFAULT] control_plane_id)"),
            );
        }
        Source::Host(id) => report.pass(
            "control plane",
            format!("{id} (this host's name: [DEFAULT] docker_socket is empty)"),
        ),
        Source::DockerEngine { socket, ask } => match ask().await {
            Ok(id) => report.pass(
                "control plane",
                format!("{id} (the Docker engine's id, from {socket})"),
            ),
            Err(e) => report.fail(
                "control plane",
                format!("the Docker engine's id is its default, and {e}"),
                "start Docker or point [DEFAULT] docker_socket at its API socket, or set \
                 [DEFAULT] control_plane_id",
            ),
        },
    }
}

fn check_extensions(report: &mut Report, extensions: &[Extension]) {
    let has = |alias: &str| extensions.iter().any(|e| e.alias == alias);
    for (alias, why) in REQUIRED {
        if has(alias) {
            report.pass(&format!("extension {alias}"), format!("present ({why})"));
        } else {
            report.fail(
                &format!("extension {alias}"),
                format!("missing: kuryr needs it ({why})"),
                "enable it in Neutron (it comes with the ML2 plugin)",
            );
        }
    }
    // Tags: standard-attr-tag covers every resource; old Neutrons split it into tag + tag-ext.
    if has("standard-attr-tag") || (has("tag") && has("tag-ext")) {
        report.pass(
            "extension standard-attr-tag",
            "present (the Docker-to-Neutron mapping lives in tags)",
        );
    } else {
        report.fail(
            "extension standard-attr-tag",
            "missing: kuryr keeps its mapping in Neutron tags",
            "use a Neutron with the standard-attr-tag extension (every release since Pike has it)",
        );
    }
    for (alias, what) in OPTIONAL {
        if has(alias) {
            report.info(&format!("extension {alias}"), format!("present ({what})"));
        } else {
            report.warn(&format!("extension {alias}"), format!("absent: no {what}"));
        }
    }
}

/// What a port mode does, for the report.
fn describe(mode: &PortMode) -> String {
    match mode {
        PortMode::Veth => "veth: containers on this host, their ports bound to it".into(),
        PortMode::Nested(n) => match n.kind {
            NestedKind::Vlan => format!(
                "vlan: containers in this VM as trunk subports, VLAN links on {}",
                n.link_iface
            ),
            NestedKind::Macvlan => format!(
                "nested: containers in this VM as allowed address pairs, macvlan links on {}",
                n.link_iface
            ),
            NestedKind::Ipvlan => format!(
                "nested: containers in this VM as allowed address pairs, ipvlan links on {}",
                n.link_iface
            ),
        },
    }
}
