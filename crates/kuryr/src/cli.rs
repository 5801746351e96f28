//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "kuryr",
    version,
    about = "kuryr: the courier between container engines and OpenStack Neutron",
    long_about = "kuryr maps Docker's networking model onto the Neutron API: Docker networks \
                  become Neutron networks and subnets, endpoints become Neutron ports."
)]
pub struct Cli {
    /// kuryr.conf to read (repeatable; later files override earlier ones).
    /// Default: the first of ~/.kuryr/kuryr.conf, ~/kuryr.conf, /etc/kuryr/kuryr.conf,
    /// /etc/kuryr.conf that exists.
    #[arg(
        long = "config-file",
        value_name = "FILE",
        global = true,
        env = "KURYR_CONFIG_FILE"
    )]
    pub config_files: Vec<PathBuf>,

    /// Also read every *.conf in this directory, in name order, after the files.
    #[arg(long = "config-dir", value_name = "DIR", global = true)]
    pub config_dir: Option<PathBuf>,

    /// Take the OpenStack credentials from this clouds.yaml cloud (as OS_CLOUD does).
    #[arg(long = "os-cloud", value_name = "NAME", global = true)]
    pub os_cloud: Option<String>,

    /// Log debug messages to standard error.
    #[arg(short, long, global = true)]
    pub debug: bool,

    /// How log lines look: text for a terminal, or one JSON object per line (with each
    /// call's name, Docker ids and Neutron request ids) for a log collector.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true, env = "KURYR_LOG_FORMAT")]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the configuration, Keystone and Neutron, one line per check, and say what to fix.
    Doctor(DoctorArgs),
    /// Serve the Docker network and IPAM plugin (Docker finds it by its socket).
    Serve(ServeArgs),
    /// Port pools of the running daemon: list, populate, free.
    #[command(subcommand)]
    Pool(PoolCommand),
    /// Per-call timings and Neutron requests of the running daemon.
    Stats(StatsArgs),
    /// Remove what kuryr made on this host that nothing will finish (ports Docker no longer
    /// knows, interfaces of ports that are gone), through the running daemon: what two looks
    /// a moment apart both saw, unchanged.
    Gc(GcArgs),
    /// Where containers are reached from outside: their published ports (floating IP, port
    /// and protocol) and their own floating IPs.
    Published(PublishedArgs),
}

#[derive(Debug, Args)]
pub struct PublishedArgs {
    /// Only these containers (names).
    pub containers: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Print what would be removed and why; remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Leave ports updated less than this many seconds ago. Default: [DEFAULT] orphan_min_age.
    #[arg(long, value_name = "SECONDS")]
    pub min_age: Option<f64>,
    /// Seconds between the two looks.
    #[arg(long, value_name = "SECONDS", default_value_t = 3.0)]
    pub confirm_after: f64,
    /// Instead: remove from Neutron the mappings of a control plane that is gone for good
    /// (a Docker engine wiped or replaced: its tags on shared networks and subnetpools).
    /// ID as `kuryr doctor` showed it on its host, or from the `kuryr.cp:` tags.
    #[arg(long, value_name = "ID", conflicts_with_all = ["min_age", "confirm_after"])]
    pub forget_control_plane: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Which daemon to talk to.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The daemon's admin socket. Default: [pool_manager] sock_file, else
    /// /run/kuryr/<plugin name>_manage.sock.
    #[arg(long, value_name = "PATH", global = true)]
    pub admin_socket: Option<PathBuf>,

    /// The plugin name the daemon serves (for the default admin socket).
    #[arg(long, default_value = "kuryr", value_parser = plugin_name, global = true)]
    pub plugin_name: String,
}

#[derive(Debug, Subcommand)]
pub enum PoolCommand {
    /// Show each pool (network, subnet, project, security groups) with its free and held
    /// ports.
    List {
        #[command(flatten)]
        admin: AdminArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add ports to a network's pool now; returns once they exist.
    Populate {
        #[command(flatten)]
        admin: AdminArgs,
        /// Neutron network id or name, or Docker network id
        /// (`docker network inspect -f '{{.Id}}' NAME`).
        network: String,
        /// Only this subnet (id or CIDR); default: the subnets Docker takes addresses from.
        #[arg(long)]
        subnet: Option<String>,
        /// How many ports to add (per subnet), up to [vif_pool] ports_pool_max.
        #[arg(long, default_value_t = 10)]
        count: usize,
    },
    /// Delete the free ports of a network's pools (of all pools without NETWORK).
    Free {
        #[command(flatten)]
        admin: AdminArgs,
        network: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The plugin name the daemon serves (its socket is /run/docker/plugins/<name>.sock).
    #[arg(long, default_value = "kuryr", value_parser = plugin_name)]
    pub plugin_name: String,
    /// The daemon's plugin socket, when `kuryr serve --socket` put it elsewhere.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Zero the counters and samples (after printing them).
    #[arg(long)]
    pub reset: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The plugin's name in Docker (`docker network create -d NAME --ipam-driver NAME`):
    /// the socket is /run/docker/plugins/NAME.sock, where Docker looks for plugins.
    #[arg(long, default_value = "kuryr", value_parser = plugin_name)]
    pub plugin_name: String,

    /// Listen on this unix socket instead (mode 0660).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// The admin socket for `kuryr pool` and `kuryr stats` (mode 0600). Default:
    /// [pool_manager] sock_file, else /run/kuryr/<plugin name>_manage.sock (next to the
    /// socket when --socket is given).
    #[arg(long, value_name = "PATH")]
    pub admin_socket: Option<PathBuf>,

    /// Also listen on the TCP address of [DEFAULT] kuryr_uri (TLS when enable_ssl), for
    /// Docker hosts that register the plugin with a .spec or .json file.
    #[arg(long)]
    pub tcp: bool,
}

impl ServeArgs {
    pub fn socket_path(&self) -> PathBuf {
        self.socket.clone().unwrap_or_else(|| {
            PathBuf::from(format!("/run/docker/plugins/{}.sock", self.plugin_name))
        })
    }
}

/// A plugin name becomes a file name: letters, digits, `-`, `_` and `.` only.
fn plugin_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(s.to_owned())
    } else {
        Err("use 1 to 64 letters, digits, '-', '_' or '.' (not starting with '.')".into())
    }
}
