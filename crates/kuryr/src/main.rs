//! The `kuryr` command.

mod cli;
mod commands;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command, LogFormat};
use kuryr::config::LoadOptions;

fn init_logging(debug: bool, format: LogFormat) {
    let default = if debug { "debug" } else { "info" };
    let filter = EnvFilter::try_from_env("KURYR_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => fmt.with_ansi(std::io::stderr().is_terminal()).init(),
        // The span's fields (call, Docker ids) on every line of the call, flattened.
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.debug, cli.log_format);
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
        Command::Doctor(args) => runtime.block_on(commands::doctor::run(&load, &args)),
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
