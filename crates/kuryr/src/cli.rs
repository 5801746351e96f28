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

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the configuration, Keystone and Neutron, one line per check, and say what to fix.
    Doctor,
    /// Serve the Docker network and IPAM plugin (Docker finds it by its socket).
    Serve(ServeArgs),
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
