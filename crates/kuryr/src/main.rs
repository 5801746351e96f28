//! The `kuryr` command.

mod cli;
mod commands;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command};
use kuryr::config::LoadOptions;

fn init_logging(debug: bool) {
    let default = if debug { "debug" } else { "info" };
    let filter = EnvFilter::try_from_env("KURYR_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.debug);
    let load = LoadOptions {
        config_files: cli.config_files.clone(),
        config_dir: cli.config_dir.clone(),
        os_cloud: cli.os_cloud.clone(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kuryr: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Doctor => runtime.block_on(commands::doctor::run(&load)),
        Command::Serve(args) => {
            let opts = commands::serve::ServeOptions {
                socket: args.socket_path(),
                tcp: args.tcp,
                admin_socket: args.admin_socket.clone(),
                plugin_name: args.plugin_name.clone(),
                explicit_socket: args.socket.is_some(),
            };
            runtime.block_on(commands::serve::run(&load, &opts))
        }
        Command::Pool(cmd) => runtime.block_on(commands::pool::run(&load, cmd)),
        Command::Stats(args) => runtime.block_on(commands::stats::run(&load, &args)),
        Command::Gc(args) => runtime.block_on(commands::gc::run(&load, &args)),
        Command::Published(args) => runtime.block_on(commands::published::run(&load, &args)),
    }
}
