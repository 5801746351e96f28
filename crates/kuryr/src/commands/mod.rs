//! One module per subcommand.

pub mod doctor;
pub mod gc;
pub mod pool;
pub mod published;
pub mod serve;
pub mod stats;

use std::path::PathBuf;

use kuryr::config::{default_admin_socket, Config, LoadOptions};

use crate::cli::AdminArgs;

/// The admin socket a client command talks to: `--admin-socket`, else `[pool_manager]
/// sock_file` of the configuration (when it can be read), else the plugin name's default.
pub fn admin_socket(load: &LoadOptions, args: &AdminArgs) -> PathBuf {
    if let Some(path) = &args.admin_socket {
        return path.clone();
    }
    Config::load(load)
        .ok()
        .and_then(|c| c.pool_manager.sock_file)
        .unwrap_or_else(|| default_admin_socket(&args.plugin_name))
}
