//! The command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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
}
